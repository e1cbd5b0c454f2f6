"""Discretisation and plug-in information measures, as disentanglement_lib computes them.

Everything here is in nats (natural logarithm) and gives the same floating
point numbers as dlib's ``utils.histogram_discretize``,
``utils.discrete_mutual_info`` and ``utils.discrete_entropy`` (which call
``sklearn.metrics.mutual_info_score`` once per pair); it only builds the
contingency tables with ``np.bincount`` instead of scipy sparse matrices.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "histogram_discretize",
    "mutual_info",
    "discrete_mutual_info",
    "discrete_entropy",
    "split_train_test",
]


def histogram_discretize(values: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """Equal-width histogram bin of every value, per column: int labels ``1..n_bins``, same shape.

    dlib's ``_histogram_discretize`` (the study's discretiser, 20 bins): the
    bins span ``[min, max]`` of each column *of this sample*; bin ``k`` is
    ``[e_k, e_{k+1})`` and the maximum falls in the last bin. A constant
    column gets numpy's range ``[v - 0.5, v + 0.5]``, hence a single label.
    """
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must be 2-D (n_samples, n_dims); got shape {values.shape}")
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}")
    labels = np.empty(values.shape, dtype=np.int64)
    for i in range(values.shape[1]):
        column = values[:, i]
        # np.histogram's own edges (what dlib takes from np.histogram(...)[1]); drop the right edge.
        edges = np.histogram_bin_edges(column, int(n_bins))[:-1]
        labels[:, i] = np.digitize(column, edges)
    return labels


def _dense_labels(column: np.ndarray) -> tuple[np.ndarray, int]:
    # sklearn's contingency_matrix numbers the classes in sorted order (np.unique).
    classes, inverse = np.unique(column, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64, copy=False), len(classes)


def _mutual_info_dense(true_idx: np.ndarray, n_true: int, pred_idx: np.ndarray, n_pred: int) -> float:
    """sklearn.metrics.mutual_info_score on labels already numbered ``0..n-1`` (all present)."""
    if n_true == 1 or n_pred == 1:  # a single cluster carries no information
        return 0.0
    joint = np.bincount(true_idx * n_pred + pred_idx, minlength=n_true * n_pred)
    # Non-zero cells in row-major order: the order of scipy.sparse.find on sklearn's CSR table,
    # so that the final sum adds the same numbers in the same order.
    nz = np.flatnonzero(joint)
    nzx, nzy = np.divmod(nz, n_pred)
    nz_val = joint[nz]
    pi = np.bincount(true_idx, minlength=n_true)
    pj = np.bincount(pred_idx, minlength=n_pred)
    contingency_sum = int(pi.sum())
    # The arithmetic below is sklearn 1.9's mutual_info_score, operation for operation.
    log_contingency_nm = np.log(nz_val)
    contingency_nm = nz_val / contingency_sum
    outer = pi.take(nzx).astype(np.int64, copy=False) * pj.take(nzy).astype(np.int64, copy=False)
    log_outer = -np.log(outer) + math.log(pi.sum()) + math.log(pj.sum())
    mi = contingency_nm * (log_contingency_nm - math.log(contingency_sum)) + contingency_nm * log_outer
    mi = np.where(np.abs(mi) < np.finfo(mi.dtype).eps, 0.0, mi)
    return float(np.clip(mi.sum(), 0.0, None))


def mutual_info(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Plug-in mutual information (nats) of two label vectors; = ``sklearn.metrics.mutual_info_score``."""
    labels_true, labels_pred = np.asarray(labels_true).reshape(-1), np.asarray(labels_pred).reshape(-1)
    if labels_true.shape != labels_pred.shape:
        raise ValueError(
            f"labels_true and labels_pred must be equally long; got {labels_true.size}, {labels_pred.size}"
        )
    return _mutual_info_dense(*_dense_labels(labels_true), *_dense_labels(labels_pred))


def discrete_mutual_info(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Matrix ``(n_codes, n_factors)`` of plug-in MI (nats) between discrete codes and factors.

    ``m[i, j] = mutual_info_score(factors[:, j], codes[:, i])`` as in dlib's
    ``utils.discrete_mutual_info`` (the factor is sklearn's ``labels_true``).
    """
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"codes and factors must be 2-D with the same number of rows; got {codes.shape}, {factors.shape}"
        )
    code_labels = [_dense_labels(codes[:, i]) for i in range(codes.shape[1])]
    factor_labels = [_dense_labels(factors[:, j]) for j in range(factors.shape[1])]
    m = np.empty((codes.shape[1], factors.shape[1]))
    for i, (code_idx, n_code) in enumerate(code_labels):
        for j, (factor_idx, n_factor) in enumerate(factor_labels):
            m[i, j] = _mutual_info_dense(factor_idx, n_factor, code_idx, n_code)
    return m


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Plug-in entropy (nats) of every column ``(n_factors,)``; dlib computes it as ``MI(y, y)``."""
    factors = np.asarray(factors)
    if factors.ndim != 2:
        raise ValueError(f"factors must be 2-D (n_samples, n_factors); got shape {factors.shape}")
    h = np.empty(factors.shape[1])
    for j in range(factors.shape[1]):
        idx, n = _dense_labels(factors[:, j])
        h[j] = _mutual_info_dense(idx, n, idx, n)
    return h


def split_train_test(*arrays: np.ndarray, train_fraction: float = 0.9) -> list[np.ndarray]:
    """First ``ceil(train_fraction * N)`` rows as train, the rest as test, for each array.

    dlib's ``utils.split_train_test`` (its fixed-data validation protocol) on our
    ``(N, ...)`` layout; returns ``[a_train, a_test, b_train, b_test, ...]``.
    Raises ValueError when either part would be empty.
    """
    if not arrays:
        raise ValueError("split_train_test needs at least one array")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1); got {train_fraction}")
    n = len(arrays[0])
    for i, array in enumerate(arrays):
        if len(array) != n:
            raise ValueError(
                f"all arrays must have the same number of rows; array 0 has {n}, array {i} has {len(array)}"
            )
    n_train = int(math.ceil(train_fraction * n))
    if n_train < 1 or n_train >= n:
        raise ValueError(
            f"too few points to split: {n} rows at train_fraction={train_fraction} give {n_train} train and "
            f"{n - n_train} test rows; both must be >= 1"
        )
    out = []
    for array in arrays:
        out.extend([array[:n_train], array[n_train:]])
    return out
