"""The intervention metrics: BetaVAE and FactorVAE scores, as disentanglement_lib computes them.

Both need pairs or batches of observations that share one factor, so they
take a :class:`~metrics.sampling.GroundTruthSampler` and an ``encode``
function. The sampling (``sample_*``) is kept apart from the scoring
(``*_from_*``): the samplers consume ``rng`` exactly as dlib's loops do (a
``RandomState`` and a deterministic encoder give dlib's very numbers), and
the scores are pure functions of the sampled arrays.

``encode_batch_size`` only changes how many observations go to ``encode`` per
call: ``None`` calls it once per batch of ``batch_size`` observations, as dlib
does; a number concatenates the batches of several points into one call
(faster for a network; identical codes for a deterministic encoder).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from metrics._threads import single_threaded_blas
from metrics._validation import check_arrays, check_counts, warn
from metrics.registry import FitCost, Presentation, register_metric
from metrics.sampling import (
    Encoder,
    GroundTruthSampler,
    RandomGenerator,
    _as_codes,
    check_rng,
    encode_batches,
    rng_integers,
    rng_seed,
)

__all__ = [
    "beta_vae_score",
    "sample_beta_vae_features",
    "beta_vae_score_from_features",
    "factor_vae_score",
    "sample_factor_vae_global_variances",
    "sample_factor_vae_local_variances",
    "factor_vae_score_from_variances",
    "sample_interventions",
]


def _n_factors(sampler: GroundTruthSampler) -> int:
    sizes = tuple(int(s) for s in sampler.factor_sizes)
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sampler.factor_sizes must be a non-empty tuple of positive ints; got {sizes}")
    return len(sizes)


class _PointEncoder:
    """Encodes the observation groups of sampled points, in calls of up to ``encode_batch_size``.

    Each point brings a tuple of observation arrays (BetaVAE: two batches; FactorVAE:
    one); ``reduce`` turns the point's codes into its feature right away, so the codes
    of 15,000 points x 128 observations are never held at once.
    """

    def __init__(self, encode: Encoder, encode_batch_size: int | None, reduce):
        self.encode, self.limit, self.reduce = encode, encode_batch_size, reduce
        self.pending: list[tuple[np.ndarray, ...]] = []
        self.n_pending = 0
        self.results: list[np.ndarray] = []

    def add(self, *observations: np.ndarray) -> None:
        if self.limit is None:  # dlib: one encode call per batch of observations
            self.results.append(
                self.reduce(*(_as_codes(self.encode(o), len(o), "encode") for o in observations))
            )
            return
        size = sum(len(o) for o in observations)
        if self.pending and self.n_pending + size > self.limit:
            self.flush()
        self.pending.append(observations)
        self.n_pending += size

    def flush(self) -> None:
        if not self.pending:
            return
        groups = [o for point in self.pending for o in point]
        codes = encode_batches(self.encode, np.concatenate(groups, axis=0), self.n_pending)
        parts = iter(np.split(codes, np.cumsum([len(o) for o in groups])[:-1]))
        for point in self.pending:
            self.results.append(self.reduce(*(next(parts) for _ in point)))
        self.pending, self.n_pending = [], 0

    def stacked(self) -> np.ndarray:
        self.flush()
        return np.stack(self.results)


def _mean_abs_difference(z1: np.ndarray, z2: np.ndarray) -> np.ndarray:
    return np.mean(np.abs(z1 - z2), axis=0)


def _variance(z: np.ndarray) -> np.ndarray:
    return np.var(z, axis=0, ddof=1)


def sample_interventions(
    sampler: GroundTruthSampler,
    encode: Encoder,
    n_points: int,
    rng: RandomGenerator,
    *,
    factor: int,
    batch_size: int = 16,
) -> np.ndarray:
    """Codes of ``n_points`` random factor vectors under each ``do(factor = c)``: ``(K, n_points, n_codes)``.

    ``K = factor_sizes[factor]``. One draw of ``n_points`` factor vectors, then for
    every value ``c`` in order the same vectors with ``factor`` set to ``c``, their
    observations and codes (``encode`` on batches of ``batch_size``). dlib's fairness
    loop (``fairness.py``, Locatello et al. 2019, "On the Fairness of Disentangled
    Representations", Sec. 4), draw for draw.
    """
    rng = check_rng(rng)
    check_counts(n_points=n_points, batch_size=batch_size)
    sizes = tuple(int(s) for s in sampler.factor_sizes)
    _n_factors(sampler)
    if not isinstance(factor, int | np.integer) or not 0 <= factor < len(sizes):
        raise ValueError(f"factor must be an integer in [0, {len(sizes)}); got {factor!r}")
    base = np.array(sampler.sample_factors(n_points, rng))
    codes = []
    for value in range(sizes[factor]):
        factors = base.copy()
        factors[:, factor] = value
        observations = sampler.sample_observations_from_factors(factors, rng)
        codes.append(encode_batches(encode, observations, batch_size))
    return np.stack(codes)  # (K, n_points, n_codes)


# -- BetaVAE score ---------------------------------------------------------------------------


def sample_beta_vae_features(
    sampler: GroundTruthSampler,
    encode: Encoder,
    n_points: int,
    rng: RandomGenerator,
    *,
    batch_size: int = 64,
    encode_batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """BetaVAE training points: features ``(n_points, n_codes)`` and labels ``(n_points,)``.

    Higgins et al. 2017, "beta-VAE", section 3: a label is a factor ``k`` drawn
    uniformly; two batches of ``batch_size`` factor vectors are drawn and the
    second copies factor ``k`` from the first; the feature is the mean over the
    batch of ``|z1 - z2|``. dlib's ``_generate_training_sample``, draw for draw.
    """
    rng = check_rng(rng)
    check_counts(n_points=n_points, batch_size=batch_size)
    n_factors = _n_factors(sampler)
    labels = np.empty(n_points, dtype=np.int64)
    encoder = _PointEncoder(encode, encode_batch_size, _mean_abs_difference)
    for p in range(n_points):
        index = int(rng_integers(rng, n_factors))
        factors1 = np.array(sampler.sample_factors(batch_size, rng))
        factors2 = np.array(sampler.sample_factors(batch_size, rng))
        factors2[:, index] = factors1[:, index]
        observations1 = sampler.sample_observations_from_factors(factors1, rng)
        encoder.add(observations1, sampler.sample_observations_from_factors(factors2, rng))
        labels[p] = index
    return encoder.stacked(), labels


def beta_vae_score_from_features(
    features_train: np.ndarray,
    labels_train: np.ndarray,
    features_eval: np.ndarray,
    labels_eval: np.ndarray,
    *,
    random_state: int = 0,
) -> dict[str, float]:
    """Train and eval accuracy of a scikit-learn-default ``LogisticRegression`` on BetaVAE features.

    dlib: no feature scaling, sklearn defaults (lbfgs, C=1, max_iter=100 in
    sklearn >= 0.22; the study era's liblinear gave other numbers).
    """
    features_train, labels_train, features_eval, labels_eval = check_arrays(
        features_train=features_train,
        labels_train=labels_train,
        features_eval=features_eval,
        labels_eval=labels_eval,
        min_points=1,
    )
    if len(np.unique(labels_train)) < 2:
        warn(
            "beta_vae_score: the training labels hold a single factor (too few points); accuracy is "
            "trivially 1 there and the score meaningless -> NaN"
        )
        return {"beta_vae_train_accuracy": float("nan"), "beta_vae_eval_accuracy": float("nan")}
    with warnings.catch_warnings(), single_threaded_blas():
        # dlib keeps lbfgs's result after the default 100 iterations; so do we.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(random_state=random_state).fit(features_train, labels_train)
    return {
        "beta_vae_train_accuracy": float(np.mean(model.predict(features_train) == labels_train)),
        "beta_vae_eval_accuracy": float(np.mean(model.predict(features_eval) == labels_eval)),
    }


#: Scores defined on [0, 1] (accuracies, normalised information).
_UNIT = (0.0, 1.0)


@register_metric(
    "beta_vae",
    inputs="sampler",
    higher_is_better={"beta_vae_train_accuracy": True, "beta_vae_eval_accuracy": True},
    bounds=dict.fromkeys(("beta_vae_train_accuracy", "beta_vae_eval_accuracy"), _UNIT),
    study={"batch_size": 64, "n_train": 10000, "n_eval": 5000, "encode_batch_size": 4096},
    fast={"batch_size": 16, "n_train": 500, "n_eval": 250, "encode_batch_size": 4096},
    # A pair of batches per training and evaluation point.
    encodes=lambda s, sizes: 2 * s["batch_size"] * (s["n_train"] + s["n_eval"]),
    presentation=Presentation(
        labels={"beta_vae_eval_accuracy": "β-VAE score (eval acc.)"}, headline={"beta_vae_eval_accuracy": 3}
    ),
    fit_cost=FitCost(1.29),
)
def beta_vae_score(
    sampler: GroundTruthSampler,
    encode: Encoder,
    rng: RandomGenerator,
    *,
    batch_size: int = 64,
    n_train: int = 10000,
    n_eval: int = 5000,
    encode_batch_size: int | None = None,
) -> dict[str, float]:
    """BetaVAE score (Higgins et al. 2017): accuracy of predicting the fixed factor from ``mean |z1 - z2|``.

    Args:
        sampler: the ground-truth data set.
        encode: observations -> codes ``(n, n_codes)``.
        rng: all randomness; train points are drawn first, then eval points (dlib's order).
        batch_size: pairs averaged into one training point (study: 64).
        n_train: training points of the classifier (study: 10000).
        n_eval: evaluation points (study: 5000).
        encode_batch_size: observations per ``encode`` call (None: dlib's ``batch_size``).

    Keys ``beta_vae_train_accuracy``, ``beta_vae_eval_accuracy`` (chance: 1/n_factors).
    """
    rng = check_rng(rng)
    check_counts(n_train=n_train, n_eval=n_eval)
    train = sample_beta_vae_features(
        sampler, encode, n_train, rng, batch_size=batch_size, encode_batch_size=encode_batch_size
    )
    evaluation = sample_beta_vae_features(
        sampler, encode, n_eval, rng, batch_size=batch_size, encode_batch_size=encode_batch_size
    )
    # Drawn after the sampling so that the sample is dlib's; lbfgs does not use it anyway.
    return beta_vae_score_from_features(*train, *evaluation, random_state=rng_seed(rng))


# -- FactorVAE score -------------------------------------------------------------------------


def sample_factor_vae_global_variances(
    sampler: GroundTruthSampler,
    encode: Encoder,
    n_points: int,
    rng: RandomGenerator,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """Per-code variance (ddof 1) over ``n_points`` random observations, ``(n_codes,)``.

    dlib's ``_compute_variances``: one draw of ``n_points`` factor vectors, encoded in
    batches of 64.
    """
    rng = check_rng(rng)
    check_counts(n_points=n_points, batch_size=batch_size)
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2 to estimate a variance; got {n_points}")
    factors = sampler.sample_factors(n_points, rng)
    codes = encode_batches(encode, sampler.sample_observations_from_factors(factors, rng), batch_size)
    return np.var(codes, axis=0, ddof=1)


def sample_factor_vae_local_variances(
    sampler: GroundTruthSampler,
    encode: Encoder,
    n_points: int,
    rng: RandomGenerator,
    *,
    batch_size: int = 64,
    encode_batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """FactorVAE votes' raw material: fixed factors ``(n_points,)``, code variances ``(n_points, n_codes)``.

    Kim & Mnih 2018, "Disentangling by Factorising", section 4: a factor ``k`` is
    drawn uniformly, a batch of ``batch_size`` factor vectors all share the
    value of ``k`` (that of the first), and the per-code variance (ddof 1) of
    their codes is recorded. dlib's ``_generate_training_sample``, draw for draw.
    """
    rng = check_rng(rng)
    check_counts(n_points=n_points, batch_size=batch_size)
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 to estimate a variance; got {batch_size}")
    n_factors = _n_factors(sampler)
    fixed = np.empty(n_points, dtype=np.int64)
    encoder = _PointEncoder(encode, encode_batch_size, _variance)
    for p in range(n_points):
        index = int(rng_integers(rng, n_factors))
        factors = np.array(sampler.sample_factors(batch_size, rng))
        factors[:, index] = factors[0, index]
        encoder.add(sampler.sample_observations_from_factors(factors, rng))
        fixed[p] = index
    return fixed, encoder.stacked()  # (n_points,), (n_points, n_codes)


def _votes(fixed, local, global_variances, active, n_factors):
    # argmin over the active codes only; the vote goes to the code's index among the active
    # ones, as in dlib (a relabelling of the columns, which changes no accuracy). With a zero
    # threshold a dead code stays: 0/0 = NaN, and argmin picks the first NaN, as in dlib.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = local[:, active] / global_variances[active]
    argmin = np.argmin(ratio, axis=1)
    votes = np.zeros((n_factors, int(active.sum())), dtype=np.int64)
    np.add.at(votes, (fixed, argmin), 1)
    return votes


def factor_vae_score_from_variances(
    global_variances: np.ndarray,
    fixed_train: np.ndarray,
    local_train: np.ndarray,
    fixed_eval: np.ndarray,
    local_eval: np.ndarray,
    *,
    n_factors: int,
    threshold: float = 0.05,
) -> dict[str, float]:
    """Majority-vote accuracies from sampled variances.

    Codes with ``sqrt(global variance) < threshold`` are pruned (dlib's
    ``prune_dims``; the studies use 0.05). Each point votes for the pair (fixed
    factor, code with the least normalised variance); each code predicts its
    most voted factor (ties: the lowest factor index).

    ``factor_vae_active_dims`` is the number of codes kept. dlib reports
    ``len(mask)``, i.e. the total number of codes, whenever at least one is kept.
    No code kept: all three keys are 0, as in dlib.
    """
    global_variances = np.asarray(global_variances, dtype=np.float64).reshape(-1)
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0; got {threshold}")
    active = np.sqrt(global_variances) >= threshold
    if np.any(global_variances[active] == 0):
        warn(
            "factor_vae_score: codes with zero variance pass the threshold (threshold 0); their 0/0 ratio "
            "attracts the votes, as in dlib"
        )
    if not active.any():
        return {
            "factor_vae_train_accuracy": 0.0,
            "factor_vae_eval_accuracy": 0.0,
            "factor_vae_active_dims": 0.0,
        }
    train_votes = _votes(
        np.asarray(fixed_train), np.asarray(local_train), global_variances, active, n_factors
    )
    eval_votes = _votes(np.asarray(fixed_eval), np.asarray(local_eval), global_variances, active, n_factors)
    classifier = np.argmax(train_votes, axis=0)
    columns = np.arange(train_votes.shape[1])
    return {
        "factor_vae_train_accuracy": float(np.sum(train_votes[classifier, columns]) / np.sum(train_votes)),
        "factor_vae_eval_accuracy": float(np.sum(eval_votes[classifier, columns]) / np.sum(eval_votes)),
        "factor_vae_active_dims": float(active.sum()),
    }


@register_metric(
    "factor_vae",
    inputs="sampler",
    higher_is_better={
        "factor_vae_train_accuracy": True,
        "factor_vae_eval_accuracy": True,
        "factor_vae_active_dims": None,
    },
    bounds=dict.fromkeys(("factor_vae_train_accuracy", "factor_vae_eval_accuracy"), _UNIT),
    study={
        "batch_size": 64,
        "n_train": 10000,
        "n_eval": 5000,
        "n_variance_estimate": 10000,
        "threshold": 0.05,
        "encode_batch_size": 4096,
    },
    fast={
        "batch_size": 16,
        "n_train": 500,
        "n_eval": 250,
        "n_variance_estimate": 2000,
        "threshold": 0.05,
        "encode_batch_size": 4096,
    },
    # One batch per vote, plus the sample behind the codes' scales.
    encodes=lambda s, sizes: s["batch_size"] * (s["n_train"] + s["n_eval"]) + s["n_variance_estimate"],
    presentation=Presentation(
        labels={"factor_vae_eval_accuracy": "FactorVAE score (eval acc.)"},
        headline={"factor_vae_eval_accuracy": 4},
    ),
    fit_cost=FitCost(1.00),
)
def factor_vae_score(
    sampler: GroundTruthSampler,
    encode: Encoder,
    rng: RandomGenerator,
    *,
    batch_size: int = 64,
    n_train: int = 10000,
    n_eval: int = 5000,
    n_variance_estimate: int = 10000,
    threshold: float = 0.05,
    encode_batch_size: int | None = None,
) -> dict[str, float]:
    """FactorVAE score (Kim & Mnih 2018): majority-vote accuracy of "least varying code -> fixed factor".

    Args:
        sampler: the ground-truth data set.
        encode: observations -> codes ``(n, n_codes)``.
        rng: all randomness, consumed in dlib's order (variances, train votes, eval votes).
        batch_size: observations per vote, all sharing one fixed factor (study: 64).
        n_train: training votes (study: 10000).
        n_eval: evaluation votes (study: 5000).
        n_variance_estimate: points for the codes' global variances (study: 10000).
        threshold: prune codes whose global standard deviation is below it (study: 0.05;
            dlib's function default 0.0 lets a dead code collect the votes through 0/0).
        encode_batch_size: observations per ``encode`` call (None: dlib's ``batch_size``).

    Keys ``factor_vae_train_accuracy``, ``factor_vae_eval_accuracy`` and
    ``factor_vae_active_dims`` (the real number of kept codes; dlib's
    ``num_active_dims`` is the total number of codes).
    """
    rng = check_rng(rng)
    check_counts(n_train=n_train, n_eval=n_eval, n_variance_estimate=n_variance_estimate)
    n_factors = _n_factors(sampler)
    global_variances = sample_factor_vae_global_variances(sampler, encode, n_variance_estimate, rng)
    if not (np.sqrt(global_variances) >= threshold).any():
        # dlib returns before drawing the votes; so do we (same generator state afterwards).
        return factor_vae_score_from_variances(
            global_variances,
            [],
            np.zeros((0, 0)),
            [],
            np.zeros((0, 0)),
            n_factors=n_factors,
            threshold=threshold,
        )
    train = sample_factor_vae_local_variances(
        sampler, encode, n_train, rng, batch_size=batch_size, encode_batch_size=encode_batch_size
    )
    evaluation = sample_factor_vae_local_variances(
        sampler, encode, n_eval, rng, batch_size=batch_size, encode_batch_size=encode_batch_size
    )
    return factor_vae_score_from_variances(
        global_variances, *train, *evaluation, n_factors=n_factors, threshold=threshold
    )
