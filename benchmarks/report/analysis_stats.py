"""The study's statistics on ``load_results`` frames: pure functions, no figures, no files.

Each function refuses with ``InsufficientData`` (a ``ValueError`` whose message says what is
missing and how much there is) rather than return a number that the data cannot support.

* ``spearman_matrix``: rank correlation between metrics over runs (Locatello et al. 2019, Fig. 3).
* ``cross_spearman``: the same between two sets of columns (unsupervised scores against supervised
  metrics: unsupervised model selection, Locatello et al. 2019, Sec. 5.3).
* ``variance_shares``: how much of a metric's variance the model, the hyperparameter within the
  model, and the seed explain (nested one-way ANOVA sums of squares).
* ``pairwise_win_probability`` / ``pairwise_comparisons``: P(a run of A scores higher than a run
  of B), with a bootstrap interval and a Mann-Whitney U test.
* ``representation_curves``: a score of the mean and of the sampled representation against the
  regularisation strength (Locatello et al. 2019, Fig. 1: total correlation of both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from benchmarks.report.runs_frame import summary_stats

__all__ = [
    "InsufficientData",
    "MIN_SEEDS",
    "MIN_CORRELATION_RUNS",
    "seeds_per_configuration",
    "spearman_matrix",
    "cross_spearman",
    "variance_shares",
    "WinProbability",
    "pairwise_win_probability",
    "pairwise_comparisons",
    "holm",
    "smallest_attainable_p",
    "representation_curves",
]

#: Seeds per configuration below which an analysis that needs seed variation refuses.
MIN_SEEDS = 3
#: Runs (pairs of values) below which a rank correlation is not computed.
MIN_CORRELATION_RUNS = 5


class InsufficientData(ValueError):
    """Too little data for an analysis; the message says what is missing and what there is."""


def seeds_per_configuration(df: pd.DataFrame, column: str | None = None) -> int:
    """The fewest runs (with a value in ``column``, if given) of any (dataset, config); 0 if none."""
    sub = df if column is None else df[df[column].notna()]
    if sub.empty:
        return 0
    return int(sub.groupby(["dataset", "config"], observed=True).size().min())


# -- rank correlations ---------------------------------------------------------------------------------


def _spearman_pairs(
    values: pd.DataFrame, xs: Sequence[str], ys: Sequence[str], min_pairs: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rho = pd.DataFrame(np.nan, index=list(xs), columns=list(ys), dtype="float64")
    n = pd.DataFrame(0, index=list(xs), columns=list(ys), dtype="int64")
    for x in xs:
        for y in ys:
            both = values[[x, y]].dropna() if x != y else values[[x]].dropna()
            n.loc[x, y] = len(both)
            if x == y:
                rho.loc[x, y] = 1.0 if len(both) >= min_pairs else np.nan
                continue
            a, b = both[x].to_numpy(float), both[y].to_numpy(float)
            if len(both) >= min_pairs and np.ptp(a) > 0 and np.ptp(b) > 0:
                rho.loc[x, y] = float(sps.spearmanr(a, b).statistic)
    return rho, n


def _varying(values: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    return [c for c in columns if values[c].dropna().nunique() > 1]


def spearman_matrix(
    values: pd.DataFrame, columns: Sequence[str] | None = None, min_pairs: int = MIN_CORRELATION_RUNS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spearman's rho between every pair of ``columns`` over the rows (runs), pairwise complete.

    Columns with fewer than two distinct values are left out (a rank correlation with a
    constant is undefined). Returns ``(rho, n)``: the symmetric matrix (NaN where fewer than
    ``min_pairs`` runs have both values) and the number of runs behind each entry.
    Raises InsufficientData with fewer than ``min_pairs`` runs or fewer than two varying columns.
    """
    columns = list(values.columns if columns is None else columns)
    if len(values) < min_pairs:
        raise InsufficientData(f"a rank correlation needs at least {min_pairs} runs; there are {len(values)}")
    kept = _varying(values, columns)
    if len(kept) < 2:
        raise InsufficientData(
            f"a correlation matrix needs at least 2 metrics that vary between runs; found {len(kept)}"
            + (f" ({', '.join(kept)})" if kept else "")
        )
    return _spearman_pairs(values, kept, kept, min_pairs)


def cross_spearman(
    values: pd.DataFrame, rows: Sequence[str], columns: Sequence[str], min_pairs: int = MIN_CORRELATION_RUNS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spearman's rho of each ``rows`` column against each ``columns`` column: ``(rho, n)``.

    As ``spearman_matrix``, for two sets (e.g. unsupervised scores against supervised metrics).
    """
    if len(values) < min_pairs:
        raise InsufficientData(f"a rank correlation needs at least {min_pairs} runs; there are {len(values)}")
    xs, ys = (
        _varying(values, [c for c in rows if c in values]),
        _varying(values, [c for c in columns if c in values]),
    )
    if not xs or not ys:
        raise InsufficientData(
            "needs at least one varying column on each side; found "
            f"{len(xs)} of {', '.join(rows) or 'none'} and {len(ys)} of {', '.join(columns) or 'none'}"
        )
    return _spearman_pairs(values, xs, ys, min_pairs)


# -- what drives the scores ----------------------------------------------------------------------------


def variance_shares(
    df: pd.DataFrame,
    metric: str,
    *,
    model: str = "model",
    config: str = "config",
    min_seeds: int = MIN_SEEDS,
) -> dict[str, float]:
    """Shares of ``metric``'s total sum of squares explained by model, hyperparameter and seed.

    Nested one-way ANOVA decomposition (seeds within configurations within models), exact
    for unbalanced groups::

        SS_total  = sum_r (y_r - y..)^2
        SS_model  = sum_m n_m (y_m - y..)^2                  between models
        SS_hyper  = sum_c n_c (y_c - y_m(c))^2               between configurations of a model
        SS_seed   = sum_r (y_r - y_c(r))^2                   within configurations (residual)

    and SS_total = SS_model + SS_hyper + SS_seed. Returns ``{"model", "hyperparameter",
    "seed"}`` (each SS over SS_total, summing to 1) plus ``n_runs``, ``n_models``,
    ``n_configs``, ``min_seeds`` and ``ss_total``.

    Raises InsufficientData with fewer than 2 models, fewer than ``min_seeds`` values in
    some configuration (the residual would be no estimate of seed variance), or no variance.
    """
    sub = df[[model, config, metric]].dropna()
    sub = sub.assign(**{config: sub[model].astype(str) + "\x00" + sub[config].astype(str)})
    n_models = sub[model].nunique()
    if n_models < 2:
        raise InsufficientData(f"{metric}: needs at least 2 models with values; found {n_models}")
    per_config = sub.groupby(config, observed=True).size()
    if per_config.min() < min_seeds:
        raise InsufficientData(
            f"{metric}: needs at least {min_seeds} seeds in every configuration to estimate seed variance; "
            f"the fewest is {int(per_config.min())} ({int((per_config < min_seeds).sum())} of "
            f"{len(per_config)} configurations below {min_seeds})"
        )
    y = sub[metric].to_numpy(float)
    grand = y.mean()
    model_mean = sub.groupby(model, observed=True)[metric].transform("mean").to_numpy(float)
    config_mean = sub.groupby(config, observed=True)[metric].transform("mean").to_numpy(float)
    ss_total = float(((y - grand) ** 2).sum())
    if not ss_total > 0:
        raise InsufficientData(f"{metric}: every run has the same value; no variance to decompose")
    ss_model = float(((model_mean - grand) ** 2).sum())
    ss_hyper = float(((config_mean - model_mean) ** 2).sum())
    ss_seed = float(((y - config_mean) ** 2).sum())
    return {
        "model": ss_model / ss_total,
        "hyperparameter": ss_hyper / ss_total,
        "seed": ss_seed / ss_total,
        "n_runs": float(len(y)),
        "n_models": float(n_models),
        "n_configs": float(len(per_config)),
        "min_seeds": float(per_config.min()),
        "ss_total": ss_total,
    }


# -- pairwise comparison -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WinProbability:
    """P(a run of A scores higher than a run of B), ties counting 1/2, with a bootstrap interval."""

    p: float
    low: float
    high: float
    n_a: int
    n_b: int
    u: float  # Mann-Whitney U of A (= p * n_a * n_b)
    p_value: float  # two-sided Mann-Whitney U test (scipy.stats.mannwhitneyu)


def pairwise_win_probability(
    a: Sequence[float], b: Sequence[float], rng: np.random.Generator, n_boot: int = 2000, level: float = 0.95
) -> WinProbability:
    """Win probability of group a over group b, its bootstrap interval and a Mann-Whitney U test.

    The win probability is P(X_a > X_b) + P(X_a = X_b) / 2 over all pairs of runs; its interval is a
    percentile bootstrap (``n_boot`` resamples of each group, with replacement, independently); the U
    test is two-sided.

    The point estimate is the Mann-Whitney U of ``a`` over n_a n_b (the probability of
    superiority, or common-language effect size).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        raise InsufficientData(f"needs at least 2 runs on each side; got {len(a)} and {len(b)}")
    wins = (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])  # (n_a, n_b)
    p = float(wins.mean())
    # A resample is a count per run (multinomial); its win probability is c_a' W c_b / (n_a n_b).
    counts_a = rng.multinomial(len(a), np.full(len(a), 1 / len(a)), size=n_boot)  # (n_boot, n_a)
    counts_b = rng.multinomial(len(b), np.full(len(b), 1 / len(b)), size=n_boot)  # (n_boot, n_b)
    boot = ((counts_a @ wins) * counts_b).sum(axis=1) / (len(a) * len(b))  # (n_boot,)
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    test = sps.mannwhitneyu(a, b, alternative="two-sided")
    return WinProbability(
        p, float(low), float(high), len(a), len(b), float(test.statistic), float(test.pvalue)
    )


def smallest_attainable_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value of the exact Mann-Whitney U test with n_a and n_b runs.

    It is reached by complete separation (U = 0 or U = n_a * n_b), the most extreme of the
    C(n_a + n_b, n_a) equally likely rankings under the null, counted on both sides:
    2 / C(n_a + n_b, n_a). With few runs it bounds what any comparison can show: 6 against 6
    runs give 2 / 924 = 0.0022, which Holm's correction over 21 model pairs turns into 0.045.
    """
    if n_a < 1 or n_b < 1:
        raise ValueError(f"n_a and n_b must be positive run counts; got {n_a} and {n_b}")
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error over the comparisons)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def pairwise_comparisons(
    df: pd.DataFrame,
    metric: str,
    rng: np.random.Generator,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    alpha: float = 0.05,
    min_seeds: int = MIN_SEEDS,
) -> pd.DataFrame:
    """Pairwise win probabilities and Holm-adjusted tests of every ordered pair of models on one dataset.

    For each ordered pair (A, B) on one dataset's runs: the win probability of A over B pooled over
    seeds and hyperparameters, its bootstrap interval, the Mann-Whitney p-value, Holm's adjusted
    p-value over the unordered pairs, and ``significant`` (adjusted p < alpha).

    Raises InsufficientData with fewer than 2 models or fewer than ``min_seeds`` seeds in some
    configuration.
    """
    sub = df[df[metric].notna()]
    models = sorted(sub["model"].astype(str).unique())
    if len(models) < 2:
        raise InsufficientData(f"{metric}: needs at least 2 models with values; found {len(models)}")
    fewest = seeds_per_configuration(sub)
    if fewest < min_seeds:
        raise InsufficientData(
            f"{metric}: needs at least {min_seeds} seeds per configuration to compare models against seed "
            f"noise; the fewest is {fewest}"
        )
    values = {m: sub.loc[sub["model"] == m, metric].to_numpy(float) for m in models}
    rows = []
    for i, ma in enumerate(models):
        for mb in models[i + 1 :]:
            w = pairwise_win_probability(values[ma], values[mb], rng, n_boot, level)
            rows.append((ma, mb, w))
    adjusted = holm([w.p_value for _, _, w in rows])
    out = []
    for (ma, mb, w), adj in zip(rows, adjusted):
        common = {"p_value": w.p_value, "p_holm": float(adj), "significant": bool(adj < alpha)}
        out.append(
            {
                "model_a": ma,
                "model_b": mb,
                "p_win": w.p,
                "ci_low": w.low,
                "ci_high": w.high,
                "n_a": w.n_a,
                "n_b": w.n_b,
                "u": w.u,
                **common,
            }
        )
        out.append(
            {
                "model_a": mb,
                "model_b": ma,
                "p_win": 1 - w.p,
                "ci_low": 1 - w.high,
                "ci_high": 1 - w.low,
                "n_a": w.n_b,
                "n_b": w.n_a,
                "u": w.n_a * w.n_b - w.u,
                **common,
            }
        )
    return pd.DataFrame(out).sort_values(["model_a", "model_b"], ignore_index=True)


# -- mean versus sampled representation ----------------------------------------------------------------


def representation_curves(df: pd.DataFrame, mean_column: str, sampled_column: str) -> pd.DataFrame:
    """Per model, strength value and representation: n, mean and std (ddof=1) over runs.

    Returns columns ``model``, ``strength_field``, ``strength_value``, ``representation``
    (``"mean"``/``"sampled"``), ``n``, ``mean``, ``std``. Raises InsufficientData when the
    sampled representation's column is missing or empty, or no model has two strength values.
    """
    if sampled_column not in df or df[sampled_column].notna().sum() == 0:
        raise InsufficientData(
            f"the records carry no score of the sampled representation ({sampled_column}); "
            'run the metrics with representation = "sampled" as well as "mean"'
        )
    if mean_column not in df or df[mean_column].notna().sum() == 0:
        raise InsufficientData(f"the records carry no score of the mean representation ({mean_column})")
    swept = df[df["strength_value"].notna()]
    if swept.empty:
        raise InsufficientData("no run has a regularisation strength to plot against")
    grid = swept.groupby("model", observed=True)["strength_value"].nunique()
    if grid.max() < 2:
        raise InsufficientData(
            "a curve needs at least 2 strength values of one model; every model has at most 1"
        )
    by = ["model", "strength_field", "strength_value"]
    stats = summary_stats(swept, [mean_column, sampled_column], by=by).reset_index()
    stats["representation"] = stats["column"].map({mean_column: "mean", sampled_column: "sampled"})
    out = stats.sort_values(["representation", *by], kind="stable", ignore_index=True)
    out["model"] = out["model"].astype(str)
    return out[["model", "strength_field", "strength_value", "representation", "n", "mean", "std"]]
