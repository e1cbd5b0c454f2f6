"""The pair sampler of weak supervision: disentanglement_lib's dynamics replayed, and both semantics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.datasets import get_dataset_class, list_datasets
from benchmarks.datasets.pairs import check_pair_settings, resample_factors, sample_pairs

WEAK = Path(__file__).resolve().parents[1] / "data" / "dlib" / "weak"
#: The reference package beside the checkout, when present, may hold cases the copy lacks.
SHARED_WEAK = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "disentanglement_lib" / "weak"


def _cases(pattern: str) -> list[Path]:
    """Every fixture case's .json matching ``pattern``, the copy's first, then the reference's others."""
    found = {p.name: p for p in sorted(SHARED_WEAK.glob(pattern))} if SHARED_WEAK.is_dir() else {}
    found.update({p.name: p for p in sorted(WEAK.glob(pattern))})
    return [found[name] for name in sorted(found)]


DYNAMICS = _cases("dynamics__*.json")


@pytest.mark.parametrize("case", DYNAMICS, ids=lambda p: p.stem)
def test_dlib_semantics_replay_dlibs_simple_dynamics(case):
    """Every pair, count and label equals what dlib's ``simple_dynamics`` produced.

    With dlib's generators: its RandomState, and the global one it never seeded, here seeded as the
    fixture says.
    """
    meta = json.loads(case.read_text())
    expected = np.load(case.with_suffix(".npz"))
    sizes, k = meta["factor_sizes"], meta["dynamics_k"]
    rs = np.random.RandomState(meta["random_seed"])
    values = np.random.RandomState(meta["global_seed"])
    for step in range(meta["num_steps"]):
        first = np.stack([rs.randint(0, size, size=1) for size in sizes], axis=1).astype(np.int64)
        second, changed = resample_factors(first, sizes, k, rs, semantics="dlib", value_rng=values)
        np.testing.assert_array_equal(first[0], expected["first_factors"][step])
        np.testing.assert_array_equal(second[0], expected["next_factors"][step])
        assert changed[0] == expected["label"][step]


@pytest.mark.parametrize("semantics", ["dlib", "exact"])
@pytest.mark.parametrize("k", [-1, 1, 2, 3])
@pytest.mark.parametrize("dataset", list_datasets())
def test_changed_factors_follow_each_semantics(dataset, k, semantics):
    sizes = get_dataset_class(dataset).factor_sizes
    changeable = [f for f, size in enumerate(sizes) if size > 1]
    if k > (len(changeable) if semantics == "exact" else len(sizes)):
        with pytest.raises(ValueError, match="out of range"):
            check_pair_settings(sizes, k, semantics)
        return
    first, second, changed = sample_pairs(sizes, 400, k, np.random.default_rng(0), semantics=semantics)
    differs = first != second  # (n, F)
    assert ((second >= 0) & (second < np.asarray(sizes))).all()
    assert (differs.sum(axis=1) <= (len(sizes) - 1 if k == -1 else k)).all()
    if semantics == "exact":
        counts = differs.sum(axis=1)
        if k == -1:
            assert set(counts) <= set(range(1, len(sizes))) and len(set(counts)) > 1
        else:
            assert (counts == min(k, len(changeable))).all()  # exactly k, each to another value
        assert differs[np.arange(len(changed)), changed].all()  # the reported factor changed
    else:
        # 1 or k factors resampled, values drawn over all values: some pairs keep every value
        assert (changed >= 0).all()
        if k in (2, 3):
            assert 1 in set(differs.sum(axis=1))
        assert (differs.sum(axis=1) == 0).any() or min(sizes[f] for f in changeable) > 40


def test_the_same_seed_gives_the_same_pairs_under_either_generator_type():
    sizes = (3, 6, 40, 32, 32)
    for make in (np.random.default_rng, np.random.RandomState):
        a = sample_pairs(sizes, 50, -1, make(7))
        b = sample_pairs(sizes, 50, -1, make(7))
        c = sample_pairs(sizes, 50, -1, make(8))
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize(
    ("k", "semantics", "message"),
    [
        (0, "dlib", "out of range"),
        (6, "dlib", "out of range"),
        (2, "paper", "unknown"),
        (True, "dlib", "range"),
    ],
)
def test_bad_settings_are_refused_naming_what_is_accepted(k, semantics, message):
    with pytest.raises(ValueError, match=message):
        check_pair_settings((3, 6, 40, 32, 32), k, semantics)
