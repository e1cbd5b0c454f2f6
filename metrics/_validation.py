"""The one input check shared by every metric.

Every public metric passes its arrays through :func:`check_arrays` by keyword,
so that an error names the argument the caller wrote, the expected value and
the value found. The role of an array follows from its name:

* ``codes*``, ``mean*``, ``logvar*``, ``features*``: real-valued, finite,
  ``(n_samples, n_dims)``; returned as float64.
* ``factors*``, ``labels*``: integer factor values, ``(n_samples, n_factors)``
  (``labels*``: ``(n_samples,)``); integral floats are accepted, returned as int64.

Arrays whose names share a suffix (``codes_train``/``factors_train``,
``mean``/``logvar``/``factors``) must have the same number of samples; all
code-like arrays must have the same number of columns, and so must all
factor arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MetricWarning", "check_arrays", "warn"]

_CODE_ROLES = ("codes", "mean", "logvar", "features")
_FACTOR_ROLES = ("factors",)
_LABEL_ROLES = ("labels",)


def _role(name: str) -> str:
    for role in (*_CODE_ROLES, *_FACTOR_ROLES, *_LABEL_ROLES):
        if name == role or name.startswith(role + "_"):
            return role
    raise AssertionError(f"check_arrays got an argument it cannot classify: {name!r}")  # programming error


def _suffix(name: str, role: str) -> str:
    return name[len(role) :]


def _as_array(name: str, value: object) -> np.ndarray:
    if value is None:
        raise ValueError(f"{name} is required; got None")
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(
            f"{name} must be convertible to a numpy array; got {type(value).__name__} ({exc})"
        ) from None
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; got dtype {array.dtype}")
    return array


def _first_bad(mask: np.ndarray) -> str:
    index = tuple(int(i) for i in np.argwhere(mask)[0])
    return f"row {index[0]}" + (f", column {index[1]}" if len(index) > 1 else "")


def _check_codes(name: str, array: np.ndarray, min_points: int, min_dims: int) -> np.ndarray:
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_dims); got shape {array.shape}")
    # C order always: the reductions then add in the order of dlib's entry points (whose
    # (n_dims, N) arrays are transposes of C-ordered (N, n_dims) stacks), whatever the caller's layout.
    array = np.ascontiguousarray(array, dtype=np.float64)
    finite = np.isfinite(array)
    if not finite.all():
        n_nan = int(np.isnan(array).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise ValueError(
            f"{name} must be finite; found {n_nan} NaN and {n_inf} infinite value(s) "
            f"(first at {_first_bad(~finite)})"
        )
    if array.shape[0] < min_points:
        raise ValueError(f"{name} must have at least {min_points} samples (rows); got {array.shape[0]}")
    if array.shape[1] < min_dims:
        raise ValueError(f"{name} must have at least {min_dims} column(s); got {array.shape[1]}")
    return array


def _check_integers(name: str, array: np.ndarray, ndim: int, min_points: int) -> np.ndarray:
    if array.ndim != ndim:
        expected = "(n_samples, n_factors)" if ndim == 2 else "(n_samples,)"
        raise ValueError(f"{name} must be a {ndim}-D array {expected}; got shape {array.shape}")
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (array != np.round(array))
        if bad.any():
            value = array[tuple(np.argwhere(bad)[0])]
            raise ValueError(
                f"{name} must hold integer factor values; found {value!r} at {_first_bad(bad)} "
                f"(dtype {array.dtype})"
            )
    array = np.ascontiguousarray(array, dtype=np.int64)
    if array.shape[0] < min_points:
        raise ValueError(f"{name} must have at least {min_points} samples (rows); got {array.shape[0]}")
    if ndim == 2 and array.shape[1] < 1:
        raise ValueError(f"{name} must have at least 1 factor (column); got {array.shape[1]}")
    return array


def check_arrays(
    *,
    min_points: int = 2,
    min_test_points: int = 1,
    min_codes: int = 1,
    min_factors: int = 1,
    **arrays: object,
) -> tuple[np.ndarray, ...]:
    """Validate and convert the named arrays; returns them in the order given.

    Args:
        min_points: least number of samples (rows) each array must have.
        min_test_points: the same for arrays named ``*_test``.
        min_codes: least number of columns of every code-like array.
        min_factors: least number of columns of every factor array.
        **arrays: the metric's arguments by their public names.

    Raises:
        ValueError: naming the argument, the expectation and what was found.
    """
    checked: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        role = _role(name)
        array = _as_array(name, value)
        least = min_test_points if name.endswith("_test") else min_points
        if role in _CODE_ROLES:
            checked[name] = _check_codes(name, array, least, min_codes)
        elif role in _FACTOR_ROLES:
            checked[name] = _check_integers(name, array, 2, least)
            if checked[name].shape[1] < min_factors:
                raise ValueError(
                    f"{name} must have at least {min_factors} factors (columns); got {checked[name].shape[1]}"
                )
        else:
            checked[name] = _check_integers(name, array, 1, least)

    # Same number of samples within a group (same suffix), same width within a role.
    by_suffix: dict[str, list[str]] = {}
    first_of_role: dict[str, str] = {}
    for name, array in checked.items():
        role = _role(name)
        by_suffix.setdefault(_suffix(name, role), []).append(name)
        width_role = "codes" if role in _CODE_ROLES else role
        if array.ndim == 2 and width_role in first_of_role:
            other = first_of_role[width_role]
            if checked[other].shape[1] != array.shape[1]:
                what = "codes (columns)" if width_role == "codes" else "factors (columns)"
                raise ValueError(
                    f"{name} and {other} must have the same number of {what}; "
                    f"got {array.shape[1]} and {checked[other].shape[1]}"
                )
        elif array.ndim == 2:
            first_of_role[width_role] = name
    for names in by_suffix.values():
        for name in names[1:]:
            if checked[name].shape[0] != checked[names[0]].shape[0]:
                raise ValueError(
                    f"{name} and {names[0]} must have the same number of samples (rows); "
                    f"got {checked[name].shape[0]} and {checked[names[0]].shape[0]}"
                )
    return tuple(checked.values())


def check_counts(**counts: object) -> None:
    """Each keyword a positive integer (not a bool), else ValueError naming it."""
    for name, value in counts.items():
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")


class MetricWarning(RuntimeWarning):
    """A metric returned NaN (or deviates from disentanglement_lib) for a reason named in the message."""


def warn(message: str) -> None:
    """Emit a MetricWarning attributed to the caller of the public metric."""
    import warnings

    warnings.warn(message, MetricWarning, stacklevel=3)
