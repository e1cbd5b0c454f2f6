"""Downstream task: how well a classifier predicts each factor from the codes (disentanglement_lib's).

Locatello et al. 2019, "Challenging Common Assumptions in the Unsupervised
Learning of Disentangled Representations", Sec. 5 ("downstream task"): for
each train size ``n`` in ``train_sizes`` (study: 10, 100, 1,000, 10,000) a
fresh training set of ``n`` points and a fresh test set of ``n_test`` (5,000)
points are drawn, one classifier per factor is fitted on the codes of the
training set, and its train and test **accuracies** are reported per factor,
with their mean and minimum over factors (dlib's ``downstream_task.py``
calls them ``train_err``/``test_err``, but they are accuracies).

Two classifiers, dlib's ``utils.logistic_regression_cv`` and
``utils.gradient_boosting_classifier``, registered as two metrics:

* ``downstream_task_lr``: ``LogisticRegressionCV(Cs=10, cv=KFold(5))``
  (scikit-learn's lbfgs, no feature scaling, accuracy as the CV score);
* ``downstream_task_gbt``: ``GradientBoostingClassifier()``, grown by
  :mod:`metrics.exact_gbt` (scikit-learn's trees split for split, with
  scikit-learn's tie order, so the very same predictions) or, with
  ``implementation="sklearn"``, by scikit-learn itself.

Keys: dlib's ``"{n}:mean_test_accuracy"`` becomes
``downstream_lr_{n}_mean_test_accuracy`` (``downstream_gbt_...`` for trees),
and likewise ``_mean_train_accuracy``, ``_min_train_accuracy``,
``_min_test_accuracy``; ``per_factor=True`` adds
``downstream_lr_{n}_train_accuracy_factor_{i}`` and ``..._test_accuracy_factor_{i}``
(dlib always returns them; the registered metrics leave them out, as their
number depends on the data set). The train accuracies are a fit diagnostic
(trees reach 1.0 on noise), so their direction is declared ``None``.

Randomness: ``rng`` draws the points exactly as dlib's
``generate_batch_factor_code`` does (train of the first size, its test set,
train of the second size, ...). dlib builds its trees with
``random_state=None``, i.e. numpy's global RNG, which decides between exactly
tied splits; here that stream is ``classifier_rng``: pass
``np.random.RandomState(seed)`` to reproduce a dlib run made after
``np.random.seed(seed)``. By default it is seeded from ``rng`` after all
points are drawn (so the points stay dlib's).

Agreement with dlib: bit for bit under the same OpenBLAS kernel
(tests/data/dlib/extra, per kernel). ``LogisticRegressionCV``'s lbfgs stops
unconverged at 100 iterations on most codes, and the point where it stops
depends on the kernel's rounding: across the SkylakeX, Haswell, Sandybridge
and Nehalem kernels dlib's own per-factor train accuracies move by up to 0.1
(one point of 10), its test accuracies by up to 0.0144 and their means by up to
0.0029; the trees do not move.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold

from metrics._threads import single_threaded_blas
from metrics._validation import check_arrays, warn
from metrics.exact_gbt import HAVE_NUMBA, fit_gradient_boosting, fit_gradient_boostings
from metrics.registry import FitCost, register_metric
from metrics.sampling import (
    Encoder,
    GroundTruthSampler,
    RandomGenerator,
    check_rng,
    rng_seed,
    sample_codes_and_factors,
)

__all__ = [
    "PREDICTORS",
    "STUDY_TRAIN_SIZES",
    "fit_predict",
    "downstream_task",
    "downstream_task_scores",
    "downstream_task_lr",
    "downstream_task_gbt",
]

#: dlib's predictor names -> the short name used in keys.
PREDICTORS = {"logistic_regression_cv": "lr", "gradient_boosting_classifier": "gbt"}
STUDY_TRAIN_SIZES = (10, 100, 1000, 10000)
_IMPLEMENTATIONS = ("presorted", "sklearn")


def _logistic_regression_cv() -> LogisticRegressionCV:
    # dlib's utils.logistic_regression_cv: LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5)). The
    # scoring and legacy-attribute settings are scikit-learn 1.9's defaults, spelled out so that
    # later versions (whose defaults change) fit the same model and 1.9 does not warn about them.
    return LogisticRegressionCV(
        Cs=10, cv=KFold(n_splits=5), scoring="accuracy", l1_ratios=(0.0,), use_legacy_attributes=True
    )


@contextlib.contextmanager
def _unconverged_lbfgs_kept():
    """dlib keeps lbfgs's result after scikit-learn's default 100 iterations; so do we, unwarned.

    BLAS single-threaded: the fits never oversubscribe, and their threads (``n_jobs``) share the
    cores. Entered in the calling thread only: ``warnings.catch_warnings`` is not thread-safe.
    """
    with warnings.catch_warnings(), single_threaded_blas():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _fit_predict_lr(
    x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    model = _logistic_regression_cv().fit(x_train, y_train)
    return model.predict(x_train), model.predict(x_eval)


def _classifier_stream(classifier_rng: np.random.RandomState) -> object:
    """What ``fit_gradient_boosting(random_state=...)`` wraps in a RandomState: the stream's bit generator.

    ``np.random.RandomState(bit_generator)`` shares the generator's state, so every fit draws
    its trees' seeds from ``classifier_rng`` one after another, as scikit-learn trees built with
    ``random_state=classifier_rng`` (dlib: the global RNG) do.
    """
    return classifier_rng._bit_generator


def fit_predict(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_eval: np.ndarray,
    *,
    predictor: str,
    classifier_rng: np.random.RandomState,
    implementation: str = "presorted",
    tie_order: str = "sklearn",
    n_jobs: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit dlib's ``predictor`` on ``x_train (N, D)``, ``y_train (N,)``; predict x_train and x_eval (M, D).

    ``classifier_rng`` is the trees' RandomState (dlib: numpy's global one); it is
    advanced as scikit-learn advances it, so successive fits continue its stream.
    """
    if predictor == "logistic_regression_cv":
        with _unconverged_lbfgs_kept():
            return _fit_predict_lr(x_train, y_train, x_eval)
    if implementation == "presorted" and HAVE_NUMBA:
        _, predicted_train, predicted_eval = fit_gradient_boosting(
            x_train,
            y_train,
            x_eval,
            random_state=_classifier_stream(classifier_rng),
            tie_order=tie_order,
            n_jobs=n_jobs,
        )
        return predicted_train, predicted_eval
    model = GradientBoostingClassifier(random_state=classifier_rng).fit(x_train, y_train)
    return model.predict(x_train), model.predict(x_eval)


def _check_options(predictor: str, implementation: str) -> None:
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {', '.join(PREDICTORS)}; got {predictor!r}")
    if implementation not in _IMPLEMENTATIONS:
        raise ValueError(
            f"implementation must be one of {', '.join(_IMPLEMENTATIONS)}; got {implementation!r}"
        )


def _check_classifier_rng(classifier_rng: object, rng: RandomGenerator) -> np.random.RandomState:
    if classifier_rng is None:
        return np.random.RandomState(rng_seed(rng))
    if isinstance(classifier_rng, int | np.integer) and not isinstance(classifier_rng, bool):
        return np.random.RandomState(int(classifier_rng))
    if isinstance(classifier_rng, np.random.RandomState):
        return classifier_rng
    raise ValueError(
        "classifier_rng must be a numpy RandomState, an int seed or None; "
        f"got {type(classifier_rng).__name__}"
    )


def downstream_task_scores(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    predictor: str = "logistic_regression_cv",
    classifier_rng: np.random.RandomState | int = 0,
    implementation: str = "presorted",
    tie_order: str = "sklearn",
    n_jobs: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-factor train and test accuracies ``(n_factors,)``, one classifier per factor (dlib: _compute_loss).

    Args:
        codes_train: ``(N, n_codes)`` float training codes.
        factors_train: ``(N, n_factors)`` int factors of the same points.
        codes_test: ``(M, n_codes)`` test codes.
        factors_test: ``(M, n_factors)`` their factors.
        predictor: ``"logistic_regression_cv"`` or ``"gradient_boosting_classifier"``.
        classifier_rng: the trees' tie-breaking stream (dlib: numpy's global RNG), advanced fit after fit.
        implementation: trees grown by ``"presorted"`` (metrics.exact_gbt) or ``"sklearn"``.
        tie_order: exact_gbt's order of summing tied values; ``"sklearn"`` keeps scikit-learn's bits.
        n_jobs: threads over the factors' classifiers (the same result for any value; see ``_fit_sets``).

    A factor with a single value in ``factors_train`` (dlib's classifiers raise): NaN for that
    factor, with a MetricWarning.
    """
    _check_options(predictor, implementation)
    classifier_rng = _check_classifier_rng(classifier_rng, np.random.RandomState(0))
    sets = [(codes_train, factors_train, codes_test, factors_test)]
    options = {"implementation": implementation, "tie_order": tie_order, "n_jobs": n_jobs}
    return _fit_sets(sets, predictor, classifier_rng, **options)[0]


#: The regressions on fewer training points than this run one after another on one thread.
#: lbfgs on a small problem is mostly Python holding the GIL, so two of them on two threads took
#: longer than in turn (200 points: 0.75-0.96x), where larger ones gain (1,000: 1.4x; 3,000:
#: 1.5-2x; the study model's codes, five factors, two threads, one process, 2 repeats).
THREADED_LR_POINTS = 1000


def _fit_sets(
    sets: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    predictor: str,
    classifier_rng: np.random.RandomState,
    *,
    implementation: str,
    tie_order: str,
    n_jobs: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per set ``(codes_train, factors_train, codes_test, factors_test)``: per-factor accuracies.

    Every classifier of every set is independent of the others (the trees once their seeds are
    drawn), so all of them share the ``n_jobs`` threads: the regressions as one list of fits,
    the costliest first (points x classes; BLAS single-threaded), so that no size or factor
    waits for another, those on fewer than ``THREADED_LR_POINTS`` points as one task; the
    presorted trees through ``exact_gbt.fit_gradient_boostings``, which
    draws every fit's seeds from ``classifier_rng`` in dlib's order (set by set, factor by
    factor) and then grows all of their stages' trees side by side: the trees of fitting one
    after another on the stream. scikit-learn's own trees draw as they grow: those fits run one
    after another.
    """
    fits = []  # (set, factor, cost, x_train, y_train, x_test)
    checked = []
    for s, arrays in enumerate(sets):
        codes_train, factors_train, codes_test, factors_test = check_arrays(
            **dict(zip(("codes_train", "factors_train", "codes_test", "factors_test"), arrays))
        )
        checked.append((factors_train, factors_test))
        for i in range(factors_train.shape[1]):
            n_classes = len(np.unique(factors_train[:, i]))
            if n_classes < 2:
                warn(
                    f"downstream_task: factor {i} takes a single value in the {len(codes_train)} training "
                    "points (dlib's classifier raises) -> NaN"
                )
                continue
            fits.append((s, i, len(codes_train) * n_classes, codes_train, factors_train[:, i], codes_test))
    problems = [fit[3:] for fit in fits]
    if predictor == "logistic_regression_cv":
        # A task per large fit, the costliest first, then one task of all the small ones in turn.
        costliest = sorted(range(len(fits)), key=lambda f: -fits[f][2])
        small = [f for f in costliest if len(problems[f][0]) < THREADED_LR_POINTS]
        tasks = [[f] for f in costliest if f not in small] + ([small] if small else [])

        def fit_in_turn(task: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
            return [_fit_predict_lr(*problems[f]) for f in task]

        with _unconverged_lbfgs_kept():  # in this thread: the fits' threads only inherit its settings
            with ThreadPoolExecutor(max(1, min(n_jobs, len(tasks)))) as pool:
                done = [pool.submit(fit_in_turn, task) for task in tasks]
                by_fit = {f: out for task, d in zip(tasks, done) for f, out in zip(task, d.result())}
        predictions = [by_fit[f] for f in range(len(fits))]
    elif implementation == "presorted" and HAVE_NUMBA:
        stream = [_classifier_stream(classifier_rng)] * len(fits)
        trees = fit_gradient_boostings(problems, stream, tie_order=tie_order, n_jobs=n_jobs)
        predictions = [(predicted_train, predicted_test) for _, predicted_train, predicted_test in trees]
    else:
        options = {"predictor": predictor, "classifier_rng": classifier_rng, "implementation": implementation}
        predictions = [fit_predict(*problem, **options) for problem in problems]
    accuracies = [(np.full(f.shape[1], np.nan), np.full(f.shape[1], np.nan)) for f, _ in checked]
    for (s, i, *_), (predicted_train, predicted_test) in zip(fits, predictions):
        factors_train, factors_test = checked[s]
        accuracies[s][0][i] = np.mean(predicted_train == factors_train[:, i])
        accuracies[s][1][i] = np.mean(predicted_test == factors_test[:, i])
    return accuracies


def _check_sizes(train_sizes: object, n_test: object) -> tuple[int, ...]:
    sizes = (train_sizes,) if isinstance(train_sizes, int | np.integer) else train_sizes
    try:
        sizes = tuple(sizes)
    except TypeError:
        sizes = ()
    if not sizes or not all(
        isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 2 for n in sizes
    ):
        raise ValueError(f"train_sizes must be a non-empty sequence of integers >= 2; got {train_sizes!r}")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"train_sizes must not repeat a size (it names the keys); got {train_sizes!r}")
    if not isinstance(n_test, int | np.integer) or isinstance(n_test, bool) or n_test < 1:
        raise ValueError(f"n_test must be a positive integer; got {n_test!r}")
    return tuple(int(n) for n in sizes)


def _keys(short: str, size: int, n_factors: int | None) -> list[str]:
    prefix = f"downstream_{short}_{size}_"
    keys = [prefix + k for k in ("mean_train_accuracy", "mean_test_accuracy", "min_train_accuracy")]
    keys.append(prefix + "min_test_accuracy")
    for i in range(n_factors or 0):
        keys += [f"{prefix}train_accuracy_factor_{i}", f"{prefix}test_accuracy_factor_{i}"]
    return keys


def downstream_task(
    sampler: GroundTruthSampler,
    encode: Encoder,
    rng: RandomGenerator,
    *,
    predictor: str = "logistic_regression_cv",
    train_sizes: Sequence[int] = STUDY_TRAIN_SIZES,
    n_test: int = 5000,
    batch_size: int = 16,
    per_factor: bool = True,
    classifier_rng: np.random.RandomState | int | None = None,
    implementation: str = "presorted",
    tie_order: str = "sklearn",
    n_jobs: int = 1,
) -> dict[str, float]:
    """dlib's ``compute_downstream_task``: per train size, accuracies of one classifier per factor.

    Args:
        sampler: the ground-truth data set.
        encode: observations -> codes ``(n, n_codes)``.
        rng: draws, for each size in order, ``n`` train points then ``n_test`` test points.
        predictor: dlib's ``logistic_regression_cv`` or ``gradient_boosting_classifier``.
        train_sizes: dlib's ``num_train`` list (study: 10, 100, 1000, 10000).
        n_test: dlib's ``num_test`` (study: 5000), drawn afresh for every size.
        batch_size: points per ``encode`` call while sampling (dlib: 16).
        per_factor: also return the per-factor accuracies (dlib does).
        classifier_rng: the trees' stream (dlib: numpy's global RNG); None seeds one from
            ``rng`` once every point is drawn.
        implementation: trees grown by ``"presorted"`` or ``"sklearn"`` (see :func:`downstream_task_scores`).
        tie_order: exact_gbt's order of summing tied values (see :func:`downstream_task_scores`).
        n_jobs: threads over every size's and factor's classifiers, the costliest first (the same
            result for any value; scikit-learn's own trees run one after another: ``_fit_sets``).

    Returns ``{downstream_<lr|gbt>_<n>_<key>: float}`` in dlib's order of keys (see the module docstring).
    """
    _check_options(predictor, implementation)
    sizes = _check_sizes(train_sizes, n_test)
    rng = check_rng(rng)
    # All points first, in dlib's order; the classifiers do not touch rng (dlib's use the global RNG).
    sets = []
    for size in sizes:
        train = sample_codes_and_factors(sampler, encode, size, rng, batch_size)
        sets.append((size, train, sample_codes_and_factors(sampler, encode, n_test, rng, batch_size)))
    classifier_rng = _check_classifier_rng(classifier_rng, rng)
    short = PREDICTORS[predictor]
    scores: dict[str, float] = {}
    options = {"implementation": implementation, "tie_order": tie_order, "n_jobs": n_jobs}
    arrays = [(*train, *test) for _, train, test in sets]  # every size's fits at once: _fit_sets
    for size, (acc_train, acc_test) in zip(sizes, _fit_sets(arrays, predictor, classifier_rng, **options)):
        values = [np.mean(acc_train), np.mean(acc_test), np.min(acc_train), np.min(acc_test)]
        for i in range(len(acc_train) if per_factor else 0):
            values += [acc_train[i], acc_test[i]]
        keys = _keys(short, size, len(acc_train) if per_factor else None)
        scores.update({k: float(v) for k, v in zip(keys, values)})
    return scores


def _directions(short: str) -> dict[str, bool | None]:
    # Test accuracy is the score; train accuracy says how well the classifier fits (trees: 1.0 on noise).
    return {k: (None if "_train_" in k else True) for n in STUDY_TRAIN_SIZES for k in _keys(short, n, None)}


def _output_keys(short: str):
    def output_keys(train_sizes: Sequence[int] = STUDY_TRAIN_SIZES, **_: object) -> list[str]:
        """The keys the registered metric returns for these settings (they name the train sizes)."""
        return [k for n in _check_sizes(train_sizes, 1) for k in _keys(short, n, None)]

    return output_keys


_STUDY = {"train_sizes": STUDY_TRAIN_SIZES, "n_test": 5000, "batch_size": 16}
# The fast settings' sizes are the study's first two, so their keys are among the declared ones.
_FAST = {"train_sizes": (10, 100), "n_test": 500, "batch_size": 250}


def _encodes(settings, factor_sizes) -> int:
    # Every train set and a fresh test set per size.
    sizes = settings.get("train_sizes", STUDY_TRAIN_SIZES)
    return sum(sizes) + len(sizes) * settings.get("n_test", 5000)


#: Measured at the study's settings on dSprites (results/perf/eval_cost_cpu.md; FitCost).
_FIT_COST = {"lr": FitCost(13.00, per_class=True), "gbt": FitCost(14.24, per_class=True)}


def _register(short: str):
    """``register_metric`` for ``downstream_task_<short>``: its keys' directions and the shared settings."""
    return register_metric(
        f"downstream_task_{short}",
        inputs="sampler",
        higher_is_better=_directions(short),
        study=_STUDY,
        fast=_FAST,
        encodes=_encodes,
        fit_cost=_FIT_COST[short],
    )


@_register("lr")
def downstream_task_lr(
    sampler: GroundTruthSampler,
    encode: Encoder,
    rng: RandomGenerator,
    *,
    train_sizes: Sequence[int] = STUDY_TRAIN_SIZES,
    n_test: int = 5000,
    batch_size: int = 16,
    per_factor: bool = False,
    n_jobs: int = 1,
) -> dict[str, float]:
    """Downstream task, logistic regression (dlib's logistic_regression_cv): accuracy per train size.

    :func:`downstream_task` with ``predictor="logistic_regression_cv"``; keys
    ``downstream_lr_<n>_{mean,min}_{train,test}_accuracy`` for each ``n`` in
    ``train_sizes`` (per-factor keys with ``per_factor=True``). ``n_jobs``: threads over the
    regressions of every size and factor (the same result for any value).
    """
    return downstream_task(
        sampler,
        encode,
        rng,
        predictor="logistic_regression_cv",
        train_sizes=train_sizes,
        n_test=n_test,
        batch_size=batch_size,
        per_factor=per_factor,
        n_jobs=n_jobs,
    )


@_register("gbt")
def downstream_task_gbt(
    sampler: GroundTruthSampler,
    encode: Encoder,
    rng: RandomGenerator,
    *,
    train_sizes: Sequence[int] = STUDY_TRAIN_SIZES,
    n_test: int = 5000,
    batch_size: int = 16,
    per_factor: bool = False,
    classifier_rng: np.random.RandomState | int | None = None,
    implementation: str = "presorted",
    tie_order: str = "sklearn",
    n_jobs: int = 1,
) -> dict[str, float]:
    """Downstream task, boosted trees (dlib's gradient_boosting_classifier): accuracy per train size.

    :func:`downstream_task` with ``predictor="gradient_boosting_classifier"``; keys
    ``downstream_gbt_<n>_{mean,min}_{train,test}_accuracy``. The trees are scikit-learn's
    ``GradientBoostingClassifier()``, grown by metrics.exact_gbt (``implementation="sklearn"``:
    by scikit-learn); ``classifier_rng`` stands for dlib's global RNG. ``tie_order``:
    ``"sklearn"`` (the default) keeps scikit-learn's order of summing tied values wherever it
    could decide a split (metrics.exact_gbt: replayed where non-twins tie and a decision is
    too close to call), so the trees are scikit-learn's to the last bit; ``"stable"`` sums
    tied values in sample order always, faster where codes collide (results/perf/eval_cost_fast_cpu.md)
    and equal up to the criterion's last bits, which decide only between splits that tie to
    rounding. A suite that sets it records it, and the protocol lists it as a deviation from
    the study.
    """
    return downstream_task(
        sampler,
        encode,
        rng,
        predictor="gradient_boosting_classifier",
        train_sizes=train_sizes,
        n_test=n_test,
        batch_size=batch_size,
        per_factor=per_factor,
        classifier_rng=classifier_rng,
        implementation=implementation,
        tie_order=tie_order,
        n_jobs=n_jobs,
    )


downstream_task_lr.output_keys = _output_keys("lr")
downstream_task_gbt.output_keys = _output_keys("gbt")
