"""Shared helpers for the disentanglement_lib comparisons: fixture loading, the toy data set, representations.

The fixtures in tests/data/dlib come from running disentanglement_lib itself
(see tests/data/dlib/README.md). Arrays there use dlib's (n_dims, N) layout;
``load_case`` transposes them to ours.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data" / "dlib"
DETERMINISTIC_CASES = sorted(p.stem for p in (DATA / "deterministic").glob("*.json"))

# dlib metric key -> (our function name, {dlib key: our key})
KEYS = {
    "mig": {"discrete_mig": "mig"},
    "sap_discrete": {"SAP_score": "sap"},
    "sap_continuous": {"SAP_score": "sap"},
    "modularity_explicitness": {
        "modularity_score": "modularity",
        "explicitness_score_train": "explicitness_train",
        "explicitness_score_test": "explicitness_test",
    },
    "unsupervised": {
        k: k
        for k in (
            "gaussian_total_correlation",
            "gaussian_wasserstein_correlation",
            "gaussian_wasserstein_correlation_norm",
            "mutual_info_score",
        )
    },
    "irs": {"IRS": "irs"},
    "dci": {
        "disentanglement": "dci_disentanglement",
        "completeness": "dci_completeness",
        "informativeness_train": "dci_informativeness_train",
        "informativeness_test": "dci_informativeness_test",
    },
    "beta_vae": {"train_accuracy": "beta_vae_train_accuracy", "eval_accuracy": "beta_vae_eval_accuracy"},
    "factor_vae": {
        "train_accuracy": "factor_vae_train_accuracy",
        "eval_accuracy": "factor_vae_eval_accuracy",
        "num_active_dims": "factor_vae_active_dims",
    },
}
# Metrics whose sampled-protocol band gets the README's extra 0.01 (classifier-based scores).
CLASSIFIER_KEYS = {
    "beta_vae_train_accuracy",
    "beta_vae_eval_accuracy",
    "sap",
    "explicitness_train",
    "explicitness_test",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness_train",
    "dci_informativeness_test",
}


def decode(value):
    """A JSON value of the fixtures as a Python number ('nan'/'inf' strings, complex dicts)."""
    if isinstance(value, str):
        return float(value)
    if isinstance(value, dict) and "__complex__" in value:
        return complex(*value["__complex__"])
    return value


@cache
def load_json(relative: str) -> dict:
    return json.loads((DATA / relative).read_text())


def load_case(case: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(the case's JSON, arrays in our layout: codes_train, factors_train, codes_test, factors_test)."""
    arrays = np.load(DATA / "deterministic" / f"{case}.npz")
    ours = {
        "codes_train": np.ascontiguousarray(arrays["mus_train"].T),
        "factors_train": np.ascontiguousarray(arrays["ys_train"].T),
        "codes_test": np.ascontiguousarray(arrays["mus_test"].T),
        "factors_test": np.ascontiguousarray(arrays["ys_test"].T),
        "factor_sizes": arrays["factor_sizes"],
    }
    return load_json(f"deterministic/{case}.json"), ours


# -- the sampled protocol's data set and representations (sampling_dsprites_like.json) --------


class ToyData:
    """dlib's toy GroundTruthData as the JSON's dataset_spec describes it: observation = factors / (K - 1)."""

    def __init__(self, factor_sizes):
        self.factor_sizes = tuple(int(k) for k in factor_sizes)

    def sample_factors(self, n, rng):
        factors = np.zeros((n, len(self.factor_sizes)), dtype=np.int64)
        for i, k in enumerate(self.factor_sizes):
            factors[:, i] = (
                rng.randint(k, size=n) if isinstance(rng, np.random.RandomState) else rng.integers(k, size=n)
            )
        return factors

    def sample_observations_from_factors(self, factors, rng):
        return factors / (np.array(self.factor_sizes, dtype=np.float64) - 1.0)


def make_representation(name: str, seed: int, spec: dict):
    """A fresh representation function exactly as the JSON's ``representations`` entry describes it."""
    noise = np.random.RandomState(1000 + seed)  # owned by the representation, fresh per metric run
    rotation = np.array(spec["rotation_matrix_R"])
    n_factors = len(spec["factor_sizes"])

    def identity(x):
        return x

    def noisy(x):
        return x + 0.1 * noise.normal(size=x.shape)

    def noisy_strong(x):
        return x + 0.5 * noise.normal(size=x.shape)

    def rotated(x):
        return (x - 0.5) @ rotation.T

    def drop_last(x):
        return x[:, : n_factors - 1]

    def identity_plus5noise(x):
        return np.concatenate([x, 0.1 * noise.normal(size=(x.shape[0], 5))], axis=1)

    def zeros(x):
        return np.zeros((x.shape[0], n_factors))

    table = {
        "identity": identity,
        "noisy": noisy,
        "noisy_strong": noisy_strong,
        "rotation": rotated,
        "drop_last": drop_last,
        "identity_plus5noise": identity_plus5noise,
        "zeros": zeros,
    }
    return table[name]


def band(ref_summary: dict, ours: list[float], classifier: bool) -> float:
    """The README's tolerance: 3 sqrt(sd_ref^2/n_ref + sd_ours^2/n_ours) (+ 0.01 for classifiers)."""
    n_ours = len(ours)
    sd_ours = float(np.std(ours, ddof=1)) if n_ours > 1 else 0.0
    tol = 3 * math.sqrt(ref_summary["std_ddof1"] ** 2 / ref_summary["n"] + sd_ours**2 / n_ours)
    return tol + (0.01 if classifier else 0.0)
