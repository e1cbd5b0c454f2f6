"""The protocol of a run: every choice that builds its model and its loss, and how it is scored.

``protocol_of(spec)`` lists them from the spec alone (the variant's full
config, defaults included, so nothing hides in a default): the architecture,
the initialisation, the likelihood, the variant's estimator options, the
optimiser and the representation the metrics score. Every record carries it,
``vaebench plan --json`` shows it, and the tables' footnotes compare it with
disentanglement_lib's unsupervised_study_v1 (``STUDY_PROTOCOL``) to say
"matches" or "deviates from it in: ...", computed, never written by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from benchmarks.runner.spec import RunSpec

__all__ = ["STUDY_PROTOCOL", "protocol_of", "deviations", "protocol_footnote"]

#: What disentanglement_lib's unsupervised_study_v1 trained and scored, under vaebench's option names.
#: A key that a run's protocol does not have (a variant without that option) is not compared.
STUDY_PROTOCOL: dict[str, Any] = {
    "architecture": "dlib_conv",
    "init": "tf",
    "likelihood": "bernoulli",
    "optimizer": "adam",
    "representation": "mean",
    "estimator": "dlib",  # beta_tcvae: analytic KL + (beta - 1) * dlib's total_correlation
    "discriminator_clip": "dlib",  # factor_vae: probabilities clipped to [1e-6, 1 - 1e-6]
}


def protocol_of(spec: RunSpec) -> dict[str, Any]:
    """The run's protocol choices: every string-valued field of the variant's full config, plus the
    optimiser and the representation scored."""
    config = spec.full_model_config()
    protocol = {k: v for k, v in sorted(config.items()) if isinstance(v, str)}
    protocol["optimizer"] = spec.training.optimizer
    protocol["representation"] = spec.representation
    return protocol


def deviations(protocol: dict[str, Any], study: dict[str, Any] = STUDY_PROTOCOL) -> dict[str, tuple]:
    """``{key: (run's value, study's value)}`` for every compared key where the run differs."""
    return {k: (protocol[k], v) for k, v in study.items() if k in protocol and protocol[k] != v}


def protocol_footnote(protocols: Iterable[dict[str, Any]]) -> str:
    """One sentence for a table: whether these runs match the study's protocol, and where they do not."""
    found: dict[str, set] = {}
    for protocol in protocols:
        for key, (value, _) in deviations(protocol).items():
            found.setdefault(key, set()).add(str(value))
    if not found:
        return "Protocol: matches disentanglement_lib's unsupervised_study_v1."
    parts = [
        f"{key} = {', '.join(sorted(values))} (study: {STUDY_PROTOCOL[key]})"
        for key, values in sorted(found.items())
    ]
    return "Protocol: deviates from disentanglement_lib's unsupervised_study_v1 in: " + "; ".join(parts) + "."
