"""How the report shows a number: metric headers, directions, headline order and notes, and formatting.

Everything it knows about a metric is read from the metric registry (each metric's
``higher_is_better`` and ``Presentation``), so the report names no metric: a newly
registered metric appears with its label, its direction and its rank in every table,
figure and analysis. A key no registered metric declares (a metric since removed, a
plug-in that failed to load) is shown by its name, with no direction. The training
terms (``reconstruction``, ``kl``) are the one thing shown that is no metric.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from metrics import METRICS

__all__ = [
    "TRAINING_TERMS",
    "SAMPLED_KEY_PREFIX",
    "KeyPresentation",
    "key_presentations",
    "metric_label",
    "higher_is_better",
    "metric_header",
    "direction_arrow",
    "metric_order",
    "headline_keys",
    "metric_notes",
    "unsupervised_keys",
    "fmt",
    "stats_text",
    "fmt_param",
    "param_sort_key",
]

#: The training objective's terms shown after the metrics (the record's ``final``: the last log
#: window's averages), with their headers; lower is better for both.
TRAINING_TERMS = {"reconstruction": "Reconstruction (final)", "kl": "KL (final)"}
#: The prefix of a score of the sampled representation in a record's flat ``metrics`` (a suite's
#: ``name@sampled`` entry; see ``benchmarks.runner.evaluate``).
SAMPLED_KEY_PREFIX = "sampled_"


@dataclass(frozen=True)
class KeyPresentation:
    """How one output key is shown: its header label, its direction and its headline rank."""

    label: str
    higher_is_better: bool | None
    headline: int | None = None


def key_presentations() -> dict[str, KeyPresentation]:
    """Every output key of the registered metrics (and the training terms), as the report shows it.

    A metric's key ``k`` scored on the sampled representation (``sampled_k``) keeps ``k``'s
    direction, is labelled ``"<label> (sampled)"`` where ``k`` has a label, and is no headline.
    """
    out: dict[str, KeyPresentation] = {}
    for _, spec in METRICS.items():
        shown = spec.presentation
        for key, higher in spec.higher_is_better.items():
            label = shown.labels.get(key)
            out[key] = KeyPresentation(label or key, higher, shown.headline.get(key))
            sampled = SAMPLED_KEY_PREFIX + key
            out[sampled] = KeyPresentation(f"{label} (sampled)" if label else sampled, higher)
    out.update({term: KeyPresentation(label, False) for term, label in TRAINING_TERMS.items()})
    return out


def _shown(key: str) -> KeyPresentation:
    return key_presentations().get(key) or KeyPresentation(key, None)


def metric_label(key: str) -> str:
    """The header of an output key: its registered label, or the key itself."""
    return _shown(key).label


def higher_is_better(key: str) -> bool | None:
    """True if higher is better, False if lower is, None if neither or undeclared."""
    return _shown(key).higher_is_better


def direction_arrow(higher: bool | None) -> str:
    """↑ where higher is better, ↓ where lower is, — where neither."""
    return {True: "↑", False: "↓"}.get(higher, "—")


def metric_header(key: str) -> str:
    """A column header: the label and the direction's arrow (``"MIG (histogram, dlib) ↑"``)."""
    shown = _shown(key)
    return f"{shown.label} {direction_arrow(shown.higher_is_better)}"


def metric_order(keys: Iterable[str]) -> list[str]:
    """Metric keys in table order: the headline scores by rank, then the rest by name."""
    shown = key_presentations()
    keys = set(keys)
    headline = sorted((k for k in keys if k in shown and shown[k].headline is not None), key=_rank(shown))
    return headline + sorted(keys - set(headline))


def headline_keys(keys: Iterable[str]) -> list[str]:
    """The headline scores among ``keys``, by rank."""
    shown = key_presentations()
    return sorted((k for k in set(keys) if k in shown and shown[k].headline is not None), key=_rank(shown))


def _rank(shown: dict[str, KeyPresentation]):
    return lambda key: (shown[key].headline, key)


def metric_notes(metric_names: Iterable[str]) -> list[tuple[str, str]]:
    """(topic, text) of the notes the registered metrics among ``metric_names`` declare.

    A suite's entry ``name@sampled`` counts as ``name``. The notes of one topic are joined
    with "; " in name order; topics come in the order of their first metric by name.
    """
    names = sorted({str(n).split("@", 1)[0] for n in metric_names})
    topics: dict[str, list[str]] = {}
    for name in names:
        if name in METRICS:
            shown = METRICS.get(name).presentation
            if shown.note:
                topics.setdefault(shown.note_topic, []).append(shown.note)
    return [(topic, "; ".join(notes)) for topic, notes in topics.items()]


def unsupervised_keys(keys: Iterable[str]) -> list[str]:
    """The keys among ``keys`` that a metric of codes alone (no factors) returns, in the given order."""
    declared = {k for _, spec in METRICS.items() if spec.inputs == "codes_only" for k in spec.keys}
    return [k for k in keys if k in declared]


def fmt(x: float, digits: int = 3) -> str:
    """Fixed formatting for display; never "-0.000"."""
    text = f"{x:.{digits}f}"
    return text[1:] if re.fullmatch(r"-0\.0*", text) else text


def stats_text(stats: Any, digits: int = 3, *, with_n: bool = True) -> str:
    """A cell from a row of ``summary_stats``: "mean ± std (n=N)", "mean (n=1)", "—" for none.

    ``stats`` has ``n``, ``mean`` and ``std`` (NaN for one value); None means no value.
    ``with_n=False`` drops the n.
    """
    if stats is None:
        return "—"
    mean, std = fmt(stats.mean, digits), stats.std
    text = mean if stats.n < 2 or std != std else f"{mean} ± {fmt(std, digits)}"
    return f"{text} (n={int(stats.n)})" if with_n else text


def fmt_param(value: Any) -> str:
    """A hyperparameter value as shown in labels: floats by ``:g``, dicts and lists as sorted JSON."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def param_sort_key(value: Any) -> tuple:
    """Sort key of a hyperparameter value: numbers numerically (beta=4 before 16), then the rest by text."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, fmt_param(value))
