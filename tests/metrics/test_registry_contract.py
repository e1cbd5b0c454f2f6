"""Properties every registered metric must have, parametrised over the registry.

A new metric needs no new test code here: it is run through
``evaluate_metric`` with its ``fast`` settings on a small toy data set, and
fed the same bad inputs as every other metric of its inputs kind.
"""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import pytest

import metrics
from vaebench.registry import DuplicateNameError, UnknownNameError

NAMES = metrics.list_metrics()
SIZES = (3, 4, 6, 5)


class Toy:
    """Observation = factors / (K - 1); both generator types work."""

    factor_sizes = SIZES

    def sample_factors(self, n, rng):
        return np.stack([metrics.rng_integers(rng, k, size=n) for k in SIZES], axis=1)

    def sample_observations_from_factors(self, factors, rng):
        return np.asarray(factors) / (np.array(SIZES) - 1.0)


def good(x):
    # Each factor in its own code, plus one code that carries nothing.
    return np.concatenate([x, 0.3 * np.sin(1e3 * x.sum(axis=1, keepdims=True)) ** 2], axis=1)


def noise(x):
    # Deterministic pseudo-random codes, independent of the factors for all practical purposes.
    w = np.arange(1, x.shape[1] * 5 + 1, dtype=float).reshape(x.shape[1], 5)
    return np.modf(np.sin(x @ w * 12.9898 + 0.5) * 43758.5453)[0]


def entangled(x):
    q = np.linalg.qr(np.random.RandomState(7).normal(size=(x.shape[1], x.shape[1])))[0]
    return np.concatenate([(x - 0.5) @ q.T * np.array([1.0, 2.0, 3.0, 4.0]), good(x)[:, -1:]], axis=1)


def posterior(rep):
    def encode_posterior(x):
        mean = rep(x)
        return mean, np.full(mean.shape, np.log(1e-4))

    return encode_posterior


def model_group(rep, rng, n_models=3, n_points=400):
    """A group of "models" of one representation, encoded on the same points: (means, logvars).

    Model m sees the points shifted by 0.137 m (so that noise codes differ between models,
    while factor-aligned codes only move by a constant) and permutes and flips its codes.
    """
    x = Toy().sample_observations_from_factors(Toy().sample_factors(n_points, rng), rng)
    means = []
    for m in range(n_models):
        codes = rep(x + 0.137 * m)
        order = np.random.RandomState(m).permutation(codes.shape[1])
        means.append(codes[:, order] * np.where(np.arange(codes.shape[1]) % 2, -1.0, 1.0))
    return means, [np.full(mean.shape, np.log(1e-4)) for mean in means]


def evaluate(name, rep, seed=0, rng_type=np.random.RandomState):
    spec = metrics.get_metric(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.MetricWarning)
        if spec.inputs == "model_group":  # scored per group (`vaebench udr`): the group's first model
            settings = {k: v for k, v in spec.fast.items() if k != "n_points"}
            return spec.function(*model_group(rep, rng_type(seed)), **settings)[0]
        return metrics.evaluate_metric(
            name, Toy(), rep, rng_type(seed), settings="fast", encode_posterior=posterior(rep)
        )


_GOOD: dict[str, dict] = {}


def evaluate_good(name):
    """``evaluate(name, good)``, computed once per metric: three tests read it (the LR ones take seconds)."""
    if name not in _GOOD:
        _GOOD[name] = evaluate(name, good)
    return _GOOD[name]


def expected_keys(spec):
    """The output keys a metric declares for the fast settings.

    ``spec.keys``, or the function's ``output_keys(**settings)`` where the keys name a setting (the
    downstream task's train sizes); those must be declared keys too.
    """
    output_keys = getattr(spec.function, "output_keys", None)
    if output_keys is None:
        return list(spec.keys)
    keys = list(output_keys(**spec.fast))
    assert set(keys) <= set(spec.keys), sorted(set(keys) - set(spec.keys))
    return keys


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_complete(name):
    spec = metrics.get_metric(name)
    assert spec.name == name and callable(spec.function)
    assert spec.inputs in metrics.INPUT_KINDS
    assert spec.keys and all(v in (True, False, None) for v in spec.higher_is_better.values())
    assert set(spec.study) and set(spec.fast)
    assert spec.function.__doc__ and spec.description
    with pytest.raises(TypeError):
        spec.study["n_train"] = 1  # read-only


@pytest.mark.parametrize("name", NAMES)
def test_returns_flat_dict_of_python_floats_with_documented_keys(name):
    result = evaluate_good(name)
    spec = metrics.get_metric(name)
    assert list(result) == expected_keys(spec)
    assert all(type(value) is float and math.isfinite(value) for value in result.values()), result


@pytest.mark.parametrize("name", NAMES)
def test_direction_good_beats_bad(name):
    """Higher-is-better keys: factor-aligned codes beat noise; lower-is-better: beat entangled codes."""
    spec = metrics.get_metric(name)
    ours = evaluate_good(name)
    directions = {d for d in spec.higher_is_better.values() if d is not None}
    bads = {higher: evaluate(name, noise if higher else entangled) for higher in directions}
    for key, higher in spec.higher_is_better.items():
        if higher is None or key not in ours:
            continue
        bad = bads[higher]
        if higher:
            assert ours[key] > bad[key], (key, ours[key], bad[key])
        else:
            assert ours[key] < bad[key], (key, ours[key], bad[key])


@pytest.mark.parametrize("name", NAMES)
def test_same_rng_same_result_and_generator_works(name):
    assert evaluate(name, good) == evaluate_good(name)  # a fresh run against another test's (or its first)
    result = evaluate(name, good, seed=3, rng_type=np.random.default_rng)
    assert list(result) == expected_keys(metrics.get_metric(name))


# -- bad input: one table per inputs kind, run for every metric of that kind ----------------------

RS = np.random.RandomState(0)
CODES = RS.normal(size=(60, 4))
FACTORS = RS.randint(0, 3, size=(60, 3))


def with_nan(a):
    a = a.copy()
    a[5, 1] = np.nan
    return a


def with_inf(a):
    a = a.copy()
    a[7, 0] = np.inf
    return a


# (label, arguments that replace the good ones, text the error must contain)
CODES_FACTORS_CASES = [
    ("nan codes", {"codes": with_nan(CODES)}, "codes must be finite"),
    ("inf codes", {"codes": with_inf(CODES)}, "infinite"),
    ("1-D codes", {"codes": CODES[:, 0]}, "codes must be a 2-D array"),
    ("string codes", {"codes": CODES.astype(str)}, "codes must hold real numbers"),
    ("mismatched lengths", {"factors": FACTORS[:50]}, "same number of samples"),
    ("fractional factors", {"factors": FACTORS + 0.5}, "factors must hold integer factor values"),
    ("1-D factors", {"factors": FACTORS[:, 0]}, "factors must be a 2-D array"),
    ("one point", {"codes": CODES[:1], "factors": FACTORS[:1]}, "at least 2 samples"),
]


def call(spec, args):
    if spec.inputs == "codes_factors":
        return spec.function(args["codes"], args["factors"])
    if spec.inputs == "codes_only":
        return spec.function(args["codes"])
    return spec.function(args["codes_train"], args["factors_train"], args["codes_test"], args["factors_test"])


def cases_for(kind):
    if kind in ("codes_factors", "codes_only"):
        cases = CODES_FACTORS_CASES
        if kind == "codes_only":
            cases = [c for c in cases if "factors" not in c[1] and c[0] != "mismatched lengths"]
        return [
            (label, {"codes": CODES, "factors": FACTORS, **change}, text) for label, change, text in cases
        ]
    base = {
        "codes_train": CODES,
        "factors_train": FACTORS,
        "codes_test": CODES[:30],
        "factors_test": FACTORS[:30],
    }
    return [
        ("nan test codes", {**base, "codes_test": with_nan(CODES[:30])}, "codes_test must be finite"),
        ("1-D train codes", {**base, "codes_train": CODES[:, 0]}, "codes_train must be a 2-D array"),
        ("test width", {**base, "codes_test": CODES[:30, :3]}, "same number of codes"),
        ("factor width", {**base, "factors_test": FACTORS[:30, :2]}, "same number of factors"),
        ("train lengths", {**base, "factors_train": FACTORS[:59]}, "factors_train and codes_train"),
        (
            "fractional test factors",
            {**base, "factors_test": FACTORS[:30] * 0.5},
            "factors_test must hold integer",
        ),
        ("empty test", {**base, "codes_test": CODES[:0], "factors_test": FACTORS[:0]}, "at least 1 samples"),
        ("one train point", {**base, "codes_train": CODES[:1], "factors_train": FACTORS[:1]}, "at least 2"),
    ]


ARRAY_CASES = [
    (name, label, args, text)
    for name in NAMES
    if metrics.get_metric(name).inputs in ("codes_factors", "codes_only", "train_test")
    for label, args, text in cases_for(metrics.get_metric(name).inputs)
]


@pytest.mark.parametrize(
    ("name", "label", "args", "text"), ARRAY_CASES, ids=[f"{c[0]}-{c[1]}" for c in ARRAY_CASES]
)
def test_bad_arrays_raise_value_error_naming_the_argument(name, label, args, text):
    with pytest.raises(ValueError, match=text):
        call(metrics.get_metric(name), args)


SAMPLER_NAMES = [n for n in NAMES if metrics.get_metric(n).inputs == "sampler"]


# Small sample sizes, by the name of the setting, for whichever a sampler metric takes.
TINY = {"n_train": 5, "n_eval": 5, "n_test": 5, "train_sizes": (5,), "n_test_per_class": 5}


def tiny(fn, **change):
    parameters = inspect.signature(fn).parameters
    return {k: change.get(k, v) for k, v in TINY.items() if k in parameters}


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_sampler_metrics_reject_bad_encoders_and_rngs(name):
    fn = metrics.get_metric(name).function
    with pytest.raises(ValueError, match="encode must return an array"):
        fn(Toy(), lambda x: x[:, 0], np.random.RandomState(0), **tiny(fn))
    with pytest.raises(ValueError, match="rng must be a numpy Generator"):
        fn(Toy(), good, "seed", **tiny(fn))
    size = "n_train" if "n_train" in inspect.signature(fn).parameters else "train_sizes"
    with pytest.raises(ValueError, match=f"{size} must be"):
        fn(Toy(), good, np.random.RandomState(0), **tiny(fn, n_train=0, train_sizes=(0,)))


GRID_NAMES = [n for n in NAMES if metrics.get_metric(n).inputs == "posterior_grid"]


@pytest.mark.parametrize("name", GRID_NAMES)
def test_posterior_grid_metrics_reject_bad_grids(name):
    fn = metrics.get_metric(name).function
    factors = metrics.factor_grid(SIZES)
    mean = good(factors / (np.array(SIZES) - 1.0))
    logvar = np.full(mean.shape, -8.0)
    with pytest.raises(ValueError, match="logvar and mean must have the same number of codes"):
        fn(mean, logvar[:, :2], factors, SIZES)
    with pytest.raises(ValueError, match="logvar must be finite"):
        fn(mean, with_nan(logvar), factors, SIZES)
    with pytest.raises(ValueError, match="product grid"):
        fn(mean[:-1], logvar[:-1], factors[:-1], SIZES)
    with pytest.raises(ValueError, match=r"factors\[:, 1\] must lie in \[0, 3\)"):
        fn(mean, logvar, factors, (3, 3, 6, 5))
    with pytest.raises(ValueError, match="factor_sizes must have one entry per factor"):
        fn(mean, logvar, factors, SIZES[:3])
    with pytest.raises(ValueError, match="needs encode_posterior"):
        metrics.evaluate_metric(name, Toy(), good, np.random.RandomState(0), settings="fast")


# -- the registry itself ----------------------------------------------------------------------


def test_list_metrics_wildcards():
    assert metrics.list_metrics("dci*") == ["dci", "dci_fast"]
    assert metrics.list_metrics("mig*") == ["mig", "mig_chen"]
    assert set(NAMES) >= {
        "mig",
        "mig_chen",
        "sap",
        "dci",
        "modularity_explicitness",
        "unsupervised",
        "irs",
        "beta_vae",
        "factor_vae",
    }


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownNameError, match="Did you mean 'mig'"):
        metrics.get_metric("mgi")


def test_duplicate_name_is_refused():
    def other(codes, factors):
        return {"mig": 0.0}

    with pytest.raises(DuplicateNameError, match="'mig' is already registered"):
        metrics.register_metric(
            "mig", inputs="codes_factors", higher_is_better={"mig": True}, study={}, fast={}
        )(other)


@pytest.mark.parametrize("name", NAMES)
def test_presentation_describes_only_the_metrics_own_keys(name):
    spec = metrics.get_metric(name)
    shown = spec.presentation
    assert set(shown.labels) <= set(spec.keys) and set(shown.headline) <= set(spec.keys)
    assert all(isinstance(label, str) and label for label in shown.labels.values())
    assert bool(shown.note) == bool(shown.note_topic)


def test_headline_ranks_are_distinct_across_the_registry():
    ranks = [rank for name in NAMES for rank in metrics.get_metric(name).presentation.headline.values()]
    assert ranks and len(ranks) == len(set(ranks))


def test_presentation_refuses_keys_the_metric_does_not_return_and_a_note_without_its_topic():
    shown = metrics.Presentation(labels={"y": "Y"})
    with pytest.raises(ValueError, match="presents key\\(s\\) it does not return: y"):
        metrics.MetricSpec("x", good, "codes_only", {"x": True}, {}, {}, presentation=shown)
    with pytest.raises(ValueError, match="note_topic"):
        metrics.Presentation(note="a note")


def test_spec_validates_inputs_kind():
    with pytest.raises(ValueError, match="inputs must be one of"):
        metrics.MetricSpec("x", good, "images", {"x": True}, {}, {})


def test_evaluate_metric_settings_must_be_known():
    with pytest.raises(ValueError, match="settings must be 'study' or 'fast'"):
        metrics.evaluate_metric("mig", Toy(), good, np.random.RandomState(0), settings="quick")


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_sampler_metrics_reject_nan_codes(name):
    def broken(x):
        codes = good(x)
        codes[0, 0] = np.nan
        return codes

    fn = metrics.get_metric(name).function
    with pytest.raises(ValueError, match="NaN or infinite code value"):
        fn(Toy(), broken, np.random.RandomState(0), **tiny(fn))


GROUP_NAMES = [n for n in NAMES if metrics.get_metric(n).inputs == "model_group"]


@pytest.mark.parametrize("name", GROUP_NAMES)
def test_model_group_metrics_reject_bad_groups_and_evaluate_metric_refuses_them(name):
    fn = metrics.get_metric(name).function
    means, logvars = model_group(good, np.random.RandomState(0))
    assert len(fn(means, logvars)) == len(means)
    with pytest.raises(ValueError, match="means and logvars must hold one array per model"):
        fn(means, logvars[:2])
    with pytest.raises(ValueError, match="at least 2 models"):
        fn(means[:1], logvars[:1])
    with pytest.raises(ValueError, match=r"means\[1\] must have the shape of means\[0\]"):
        fn([means[0], means[1][:, :3], means[2]], [logvars[0], logvars[1][:, :3], logvars[2]])
    with pytest.raises(ValueError, match=r"model 2 .*mean must be finite"):
        fn(means[:2] + [with_nan(means[2])], logvars)
    with pytest.raises(ValueError, match=r"model 0 .*logvar and mean must have the same number of samples"):
        fn([means[0]] + means[1:], [logvars[0][:-1]] + logvars[1:])
    with pytest.raises(ValueError, match="kl_filter_threshold must be a finite number"):
        fn(means, logvars, kl_filter_threshold=float("nan"))
    with pytest.raises(ValueError, match="vaebench udr"):
        metrics.evaluate_metric(name, Toy(), good, np.random.RandomState(0), settings="fast")


def test_metrics_imports_neither_torch_nor_the_other_packages():
    import subprocess
    import sys

    code = (
        "import sys, metrics; metrics.list_metrics(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'benchmarks', 'vae_zoo')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_toy_sampler_satisfies_the_protocol_and_docstring_examples_run():
    import doctest

    assert isinstance(Toy(), metrics.GroundTruthSampler)
    assert doctest.testmod(metrics).failed == 0
