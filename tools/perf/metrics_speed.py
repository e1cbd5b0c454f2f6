"""Time the metrics at disentanglement_lib's study sizes, against a naive dlib-style baseline.

    python -m tools.perf.metrics_speed [--n-jobs 2] [--out results/perf]

Data: a dSprites-like toy data set (factor sizes 3, 6, 40, 32, 32; observation
= factors / (K - 1)) and 10 codes: the 5 factors plus 5 N(0, 0.1^2) noise codes
(dlib's timing.json setup, "identity_plus5noise"). Study sizes: 10,000 train
and 5,000 test points; BetaVAE/FactorVAE 10,000 + 5,000 points of batch 64.

For each metric it times our implementation (``metrics``) and, in the same run
on the same arrays, a naive baseline written the straightforward dlib way
(``sklearn.metrics.mutual_info_score`` loops, one sequential
GradientBoostingClassifier per factor, sequential 1-D SVMs, dlib's sampling
loops), and prints the ratio. DCI is timed on a first call (numba compiles
or loads its trees) and warm. Both sides run with one BLAS thread, as dlib's own timings did
(OMP_NUM_THREADS=1). Writes ``metrics_cpu.json`` and ``metrics_cpu.md``.

``--extra`` times only the downstream task (both predictors), fairness and UDR (both
correlations) against dlib's code transcribed, and writes ``metrics_extra_cpu.{json,md}``;
``--extra-train-sizes`` / ``--extra-fairness-train`` reduce the study's sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
import scipy
import scipy.linalg
import scipy.stats
import sklearn
from sklearn import ensemble, linear_model, preprocessing, svm
from sklearn import metrics as skm

import metrics
from benchmarks.runner import provenance
from metrics._threads import single_threaded_blas

ROOT = Path(__file__).resolve().parents[2]

SIZES = (3, 6, 40, 32, 32)
N_TRAIN, N_TEST = 10000, 5000
DLIB_TIMING = ROOT / "tests" / "data" / "dlib" / "timing.json"


# -- data -------------------------------------------------------------------------------------


class ToyData:
    """A dSprites-like toy data set: uniform factors of sizes ``SIZES``, observation = factors / (K - 1)."""

    factor_sizes = SIZES

    def sample_factors(self, n, rng):
        """``n`` uniform factor vectors (n, 5)."""
        return np.stack([metrics.rng_integers(rng, k, size=n) for k in SIZES], axis=1)

    def sample_observations_from_factors(self, factors, rng):
        """The observations of ``factors``: each factor scaled to [0, 1]."""
        return factors / (np.array(SIZES) - 1.0)


def make_encoder(seed=0):
    """A fixed encoder: the 5 observations plus 5 codes of N(0, 0.1^2) noise, (batch, 5) -> (batch, 10)."""
    noise = np.random.RandomState(1000 + seed)

    def encode(x):  # (batch, 5) -> (batch, 10)
        return np.concatenate([x, 0.1 * noise.normal(size=(x.shape[0], 5))], axis=1)

    return encode


# -- the naive baseline: dlib's code, transcribed to (N, dims) arrays --------------------------------


def naive_discretize(x, n_bins=20):
    """dlib's histogram discretizer, one column at a time."""
    out = np.zeros_like(x)
    for i in range(x.shape[1]):
        out[:, i] = np.digitize(x[:, i], np.histogram(x[:, i], n_bins)[1][:-1])
    return out


def naive_mi(codes_d, factors):
    """The (codes, factors) mutual information matrix, one ``mutual_info_score`` per pair."""
    return np.array(
        [
            [skm.mutual_info_score(factors[:, j], codes_d[:, i]) for j in range(factors.shape[1])]
            for i in range(codes_d.shape[1])
        ]
    )


def naive_mig(codes, factors):
    """MIG as dlib computes it, without vectorisation: the baseline for ``metrics.mig``."""
    m = naive_mi(naive_discretize(codes), factors)
    h = np.array([skm.mutual_info_score(factors[:, j], factors[:, j]) for j in range(factors.shape[1])])
    s = np.sort(m, axis=0)[::-1]
    return {"mig": float(np.mean((s[0] - s[1]) / h))}


def naive_sap(ct, ft, ce, fe):
    """SAP with dlib's per-pair LinearSVC fits: the baseline for ``metrics.sap``."""
    s = np.zeros((ct.shape[1], ft.shape[1]))
    for i in range(ct.shape[1]):
        for j in range(ft.shape[1]):
            clf = svm.LinearSVC(C=0.01, class_weight="balanced").fit(ct[:, i : i + 1], ft[:, j])
            s[i, j] = np.mean(clf.predict(ce[:, i : i + 1]) == fe[:, j])
    s = np.sort(s, axis=0)
    return {"sap": float(np.mean(s[-1] - s[-2]))}


def naive_modularity_explicitness(ct, ft, ce, fe):
    """Modularity and explicitness as dlib computes them: the baseline."""
    mi = naive_mi(naive_discretize(ct), ft)
    sq = mi**2
    mx = sq.max(axis=1)
    mod = 1 - (sq.sum(axis=1) - mx) / (mx * (sq.shape[1] - 1.0))
    mod[mx == 0] = 0
    mean, std = ct.mean(axis=0), ct.std(axis=0)
    xt, xe = (ct - mean) / std, (ce - mean) / std
    rt, re = [], []
    for j in range(ft.shape[1]):
        clf = linear_model.LogisticRegression().fit(xt, ft[:, j])
        mlb = preprocessing.MultiLabelBinarizer()
        rt.append(skm.roc_auc_score(mlb.fit_transform(ft[:, j : j + 1]), clf.predict_proba(xt)))
        re.append(skm.roc_auc_score(mlb.fit_transform(fe[:, j : j + 1]), clf.predict_proba(xe)))
    return {
        "modularity": float(np.mean(mod)),
        "explicitness_train": float(np.mean(rt)),
        "explicitness_test": float(np.mean(re)),
    }


def naive_unsupervised(codes):
    """The unsupervised scores (Gaussian TC, Wasserstein correlation, mutual information): the baseline."""
    cov = np.cov(codes.T)
    tc = 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])
    w = 2 * np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(cov * np.diag(cov)[:, None]))
    d = naive_discretize(codes)
    mi = naive_mi(d, d)
    np.fill_diagonal(mi, 0)
    n = codes.shape[1]
    return {
        "gaussian_total_correlation": float(tc),
        "gaussian_wasserstein_correlation": float(np.real(w)),
        "gaussian_wasserstein_correlation_norm": float(np.real(w) / np.trace(cov)),
        "mutual_info_score": float(mi.sum() / (n * n - n)),
    }


def naive_irs(codes, factors):
    """IRS as dlib computes it, one factor and one value at a time: the baseline."""
    fd = naive_discretize(factors.astype(float))
    z = codes[:, codes.var(axis=0) > 0]
    max_dev = np.max(np.abs(z - z.mean(axis=0)), axis=0)
    cum = np.zeros((z.shape[1], fd.shape[1]))
    for i in range(fd.shape[1]):
        values = np.unique(fd[:, i])
        for v in values:
            g = z[fd[:, i] == v]
            cum[:, i] += np.percentile(np.abs(g - g.mean(axis=0)), 99, axis=0)
        cum[:, i] /= len(values)
    scores = (1 - cum / max_dev[:, None]).max(axis=1)
    return {"irs": float(np.average(scores, weights=max_dev))}


FACTOR_SECONDS: list[float] = []  # naive_dci's seconds per factor fit, for the 2-worker makespan


def naive_dci(ct, ft, ce, fe):
    """DCI with scikit-learn's GradientBoostingClassifier per factor: the baseline for the exact DCI."""
    r = np.zeros((ct.shape[1], ft.shape[1]))
    at, ae = [], []
    FACTOR_SECONDS.clear()
    for j in range(ft.shape[1]):
        start = time.process_time()
        model = ensemble.GradientBoostingClassifier().fit(ct, ft[:, j])
        FACTOR_SECONDS.append(time.process_time() - start)
        r[:, j] = np.abs(model.feature_importances_)
        at.append(np.mean(model.predict(ct) == ft[:, j]))
        ae.append(np.mean(model.predict(ce) == fe[:, j]))
    d = 1 - scipy.stats.entropy(r.T + 1e-11, base=r.shape[1])
    c = 1 - scipy.stats.entropy(r + 1e-11, base=r.shape[0])
    return {
        "dci_disentanglement": float(np.sum(d * r.sum(axis=1) / r.sum())),
        "dci_completeness": float(np.sum(c * r.sum(axis=0) / r.sum())),
        "dci_informativeness_train": float(np.mean(at)),
        "dci_informativeness_test": float(np.mean(ae)),
    }


def naive_beta_vae(data, encode, rs, batch_size=64, n_train=10000, n_eval=5000):
    """The β-VAE score with dlib's one-point-at-a-time sampling: the baseline."""

    def points(n):
        feats, labels = [], []
        for _ in range(n):
            k = rs.randint(len(SIZES))
            f1, f2 = data.sample_factors(batch_size, rs), data.sample_factors(batch_size, rs)
            f2[:, k] = f1[:, k]
            z1 = encode(data.sample_observations_from_factors(f1, rs))
            z2 = encode(data.sample_observations_from_factors(f2, rs))
            feats.append(np.mean(np.abs(z1 - z2), axis=0))
            labels.append(k)
        return np.array(feats), np.array(labels)

    xt, yt = points(n_train)
    model = linear_model.LogisticRegression(random_state=rs).fit(xt, yt)
    xe, ye = points(n_eval)
    return {
        "beta_vae_train_accuracy": float(np.mean(model.predict(xt) == yt)),
        "beta_vae_eval_accuracy": float(model.score(xe, ye)),
    }


def naive_factor_vae(data, encode, rs, batch_size=64, n_train=10000, n_eval=5000, n_var=10000):
    """The FactorVAE score with dlib's one-vote-at-a-time sampling: the baseline."""
    f = data.sample_factors(n_var, rs)
    obs = data.sample_observations_from_factors(f, rs)
    reps = np.concatenate([encode(obs[i : i + 64]) for i in range(0, n_var, 64)])
    var = np.var(reps, axis=0, ddof=1)
    active = np.sqrt(var) >= 0.05

    def votes(n):
        v = np.zeros((len(SIZES), var.shape[0]), dtype=np.int64)
        for _ in range(n):
            k = rs.randint(len(SIZES))
            f = data.sample_factors(batch_size, rs)
            f[:, k] = f[0, k]
            z = encode(data.sample_observations_from_factors(f, rs))
            v[k, np.argmin(np.var(z, axis=0, ddof=1)[active] / var[active])] += 1
        return v

    tv = votes(n_train)
    cls = np.argmax(tv, axis=0)
    ev = votes(n_eval)
    cols = np.arange(tv.shape[1])
    return {
        "factor_vae_train_accuracy": float(tv[cls, cols].sum() / tv.sum()),
        "factor_vae_eval_accuracy": float(ev[cls, cols].sum() / ev.sum()),
    }


# -- timing -------------------------------------------------------------------------------------


def timed(fn, *args, repeat=1, **kwargs) -> tuple[float, float, dict]:
    """Best wall-clock seconds of ``repeat`` calls, the process CPU seconds of that call, the result."""
    best, best_cpu, result = float("inf"), 0.0, None
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        result = fn(*args, **kwargs)
        elapsed = time.perf_counter() - start
        if elapsed < best:
            best, best_cpu = elapsed, time.process_time() - cpu
    return best, best_cpu, result


def time_mig_chen(mean, logvar, grid, n_samples, n_jobs) -> dict:
    """Chen et al.'s MIG on dSprites' sizes (shape left out), timed once."""
    t, cpu, result = timed(
        metrics.mig_chen,
        mean,
        logvar,
        grid,
        SIZES,
        rng=0,
        exclude_factors=(0,),
        n_samples=n_samples,
        n_jobs=n_jobs,
    )
    return {
        "seconds": t,
        "cpu_seconds": cpu,
        "grid_points": len(grid),
        "n_samples": n_samples,
        "result": result,
    }


def machine() -> dict:
    """The machine and library versions the timings were taken with."""
    return {
        **provenance.machine(),
        "joblib": joblib.__version__,
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }


def row(name, ours, naive, note="") -> dict:
    """One table row from (wall, cpu, result) of ours and of the naive baseline (or None)."""
    r = {
        "metric": name,
        "ours_s": ours[0],
        "ours_cpu_s": ours[1],
        "ours": ours[2],
        "note": note,
        "naive_s": None,
        "naive_cpu_s": None,
        "speedup": None,
        "max_abs_diff_vs_naive": None,
    }
    if naive is not None:
        r.update(
            naive_s=naive[0],
            naive_cpu_s=naive[1],
            speedup=naive[0] / ours[0],
            # dci_fast reports dci_fast_* keys: compare each with the naive dci_* of the same quantity
            max_abs_diff_vs_naive=max(
                abs(ours[2].get(k, ours[2].get(k.replace("dci_", "dci_fast_", 1), np.nan)) - naive[2][k])
                for k in naive[2]
            ),
        )
    return r


def main(argv=None) -> int:
    """Time every metric and its baseline (``--extra``: downstream task, fairness, UDR); write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n-jobs", type=int, default=2, help="workers for DCI, SAP and explicitness (default 2)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "perf")
    parser.add_argument(
        "--extra",
        action="store_true",
        help="time only the downstream task, fairness and UDR (writes metrics_extra_cpu.{json,md})",
    )
    parser.add_argument(
        "--extra-train-sizes",
        type=lambda v: tuple(int(x) for x in v.split(",")),
        default=(10, 100, 1000, 10000),
        help="downstream train sizes for --extra (study: 10,100,1000,10000)",
    )
    parser.add_argument(
        "--extra-fairness-train", type=int, default=10000, help="fairness n_train for --extra (study 10000)"
    )
    args = parser.parse_args(argv)
    if args.extra:
        return extra_main(args)
    warnings.simplefilter("ignore")  # convergence warnings of the naive baseline's default classifiers
    n_jobs = args.n_jobs
    info = {
        "machine": machine(),
        "loadavg_start": os.getloadavg(),
        "n_jobs": n_jobs,
        "setup": f"toy dSprites sizes {SIZES}, 10 codes (5 factors + 5 N(0, 0.1^2) noise codes), "
        f"{N_TRAIN} train / {N_TEST} test points, study settings",
    }
    print(
        f"{info['machine']['cpu_model']}, {info['machine']['cpus_usable']} usable cores, "
        f"load {load(info['loadavg_start'])}",
        flush=True,
    )

    data = ToyData()
    rs = np.random.RandomState(0)
    t_sample, _, (ct, ft) = timed(metrics.sample_codes_and_factors, data, make_encoder(), N_TRAIN, rs, 16)
    ce, fe = metrics.sample_codes_and_factors(data, make_encoder(1), N_TEST, rs, 16)
    info["sampling_seconds_train_10000_batch16"] = t_sample
    train_test = (ct, ft, ce, fe)
    rows = []

    def compare(name, ours_fn, naive_fn, repeat=3, note=""):
        with single_threaded_blas():
            ours, naive = timed(ours_fn, repeat=repeat), timed(naive_fn, repeat=repeat)
        rows.append(row(name, ours, naive, note))
        r = rows[-1]
        print(
            f"{name:28s} ours {r['ours_s']:8.3f} s   naive {r['naive_s']:8.3f} s   x{r['speedup']:6.2f}   "
            f"|diff| {r['max_abs_diff_vs_naive']:.2g}",
            flush=True,
        )

    compare("mig", lambda: metrics.mig(ct, ft), lambda: naive_mig(ct, ft))
    compare("sap", lambda: metrics.sap(*train_test, n_jobs=n_jobs), lambda: naive_sap(*train_test))
    compare(
        "modularity_explicitness",
        lambda: metrics.modularity_explicitness(*train_test, n_jobs=n_jobs),
        lambda: naive_modularity_explicitness(*train_test),
    )
    compare("unsupervised", lambda: metrics.unsupervised(ct), lambda: naive_unsupervised(ct))
    compare("irs", lambda: metrics.irs(ct, ft), lambda: naive_irs(ct, ft))
    compare(
        "beta_vae (incl. sampling)",
        lambda: metrics.beta_vae_score(
            data, make_encoder(), np.random.RandomState(0), encode_batch_size=4096
        ),
        lambda: naive_beta_vae(data, make_encoder(), np.random.RandomState(0)),
        repeat=1,
        note="same draws; ours encodes 4096 observations per call",
    )
    compare(
        "factor_vae (incl. sampling)",
        lambda: metrics.factor_vae_score(
            data, make_encoder(), np.random.RandomState(0), encode_batch_size=4096
        ),
        lambda: naive_factor_vae(data, make_encoder(), np.random.RandomState(0)),
        repeat=1,
        note="same draws; ours encodes 4096 observations per call",
    )

    # DCI: the naive sequential scikit-learn GBT (dlib's code), then ours: the presorted, compiled
    # re-implementation of the same trees (metrics/exact_gbt.py) on n_jobs threads.
    with single_threaded_blas():
        naive = timed(naive_dci, *train_test)
        print(f"{'dci naive (sequential)':28s} {naive[0]:8.1f} s", flush=True)
        # The first call in a process compiles the trees (or loads numba's on-disk cache): timed apart.
        first = timed(metrics.dci, *train_test, rng=0, n_jobs=n_jobs)
        ours = timed(metrics.dci, *train_test, rng=0, n_jobs=n_jobs, repeat=3)
        single = timed(metrics.dci, *train_test, rng=0, n_jobs=1)
        print(
            f"{'dci presorted':28s} {ours[0]:8.1f} s   x{naive[0] / ours[0]:5.2f}   (first call "
            f"{first[0]:.1f} s, one thread {single[0]:.1f} s)",
            flush=True,
        )
        fast = timed(metrics.dci_fast, *train_test, rng=0, n_jobs=n_jobs)
        print(f"{'dci_fast':28s} {fast[0]:8.1f} s   x{naive[0] / fast[0]:5.2f} vs naive dci", flush=True)
    rows.append(
        row(
            "dci",
            ours,
            naive,
            f"presorted trees, n_jobs={n_jobs} (one thread {single[0]:.1f} s; first call in a process "
            f"{first[0]:.1f} s, compiling or loading the compiled trees); "
            "score diffs = rounding and tie-breaking of the trees",
        )
    )
    rows.append(
        row(
            "dci_fast",
            fast,
            naive,
            "HistGradientBoosting, gain importances: NOT dlib's DCI; "
            "speedup and diffs against the naive exact dci",
        )
    )
    info["dci_first_call_seconds"] = first[0]
    info["dci_one_thread_seconds"] = single[0]
    info["dci_naive_factor_cpu_seconds"] = list(FACTOR_SECONDS)

    # mig_chen: the registry's fast setting (thinned grid, 1,000 samples) ...
    grid = metrics.factor_grid(SIZES, 8)
    mean = make_encoder()(grid / (np.array(SIZES) - 1.0))
    logvar = np.full(mean.shape, np.log(0.01))
    info["mig_chen_fast_grid"] = time_mig_chen(mean, logvar, grid, 1000, n_jobs)
    t = info["mig_chen_fast_grid"]["seconds"]
    print(f"{'mig_chen (9,216-point grid)':28s} ours {t:8.3f} s", flush=True)
    # ... and Chen's 10,000 Monte-Carlo samples on 1/16 of the grid, extrapolated to the full grid (the
    # cost is linear in the number of grid points at fixed n_samples). Half the codes narrow and
    # informative, half broad and uninformative, like a trained VAE's posterior.
    part = metrics.factor_grid(SIZES, (None, None, 10, 16, 16))
    x = part / (np.array(SIZES) - 1.0)
    noise = np.random.RandomState(5).normal(size=(len(part), 5))
    mean = np.concatenate([2.0 * x + 0.05 * noise, 0.05 * noise[:, ::-1]], axis=1)
    logvar = np.concatenate([np.full(x.shape, np.log(0.05**2)), np.full(x.shape, np.log(0.98))], axis=1)
    info["mig_chen_study_sixteenth_grid"] = time_mig_chen(mean, logvar, part, 10000, n_jobs)
    t = info["mig_chen_study_sixteenth_grid"]["seconds"]
    info["mig_chen_study_sixteenth_grid"]["extrapolated_full_grid_seconds"] = t * 737280 / len(part)
    print(
        f"{'mig_chen (1/16 grid, 10k)':28s} ours {t:8.1f} s -> full grid about "
        f"{t * 737280 / len(part) / 60:.0f} min",
        flush=True,
    )

    suite = [
        "mig",
        "beta_vae (incl. sampling)",
        "factor_vae (incl. sampling)",
        "sap",
        "modularity_explicitness",
        "unsupervised",
        "irs",
    ]
    by_name = {r["metric"]: r for r in rows}
    core = sum(by_name[m]["ours_s"] for m in suite)
    info["suite_seconds"] = {
        "ours_with_dci": core + by_name["dci"]["ours_s"] + 2 * t_sample,
        "ours_with_dci_fast": core + by_name["dci_fast"]["ours_s"] + 2 * t_sample,
        "naive_with_dci": sum(by_name[m]["naive_s"] for m in suite)
        + by_name["dci"]["naive_s"]
        + 2 * t_sample,
        "ours_cpu_with_dci": sum(by_name[m]["ours_cpu_s"] for m in suite) + by_name["dci"]["ours_cpu_s"],
        "naive_cpu_with_dci": sum(by_name[m]["naive_cpu_s"] for m in suite) + by_name["dci"]["naive_cpu_s"],
        "ours_with_dci_first_call": core + info["dci_first_call_seconds"] + 2 * t_sample,
        "note": "sum of the eight study metrics; sampling counted once for train and once for test; "
        "'first call': with DCI's first call in a fresh process (compiling or loading the trees)",
    }
    info["suite_speedup"] = info["suite_seconds"]["naive_with_dci"] / info["suite_seconds"]["ours_with_dci"]
    info["rows"] = rows
    info["loadavg_end"] = os.getloadavg()
    if DLIB_TIMING.exists():
        info["dlib_timing_json_entry_point_seconds"] = json.loads(DLIB_TIMING.read_text())["modern"][
            "entry_point_seconds"
        ]
    s = info["suite_seconds"]
    print(
        f"suite: ours {s['ours_with_dci']:.1f} s (with dci_fast {s['ours_with_dci_fast']:.1f} s), naive "
        f"{s['naive_with_dci']:.1f} s, x{info['suite_speedup']:.2f}; load {load(info['loadavg_end'])}",
        flush=True,
    )

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics_cpu.json").write_text(json.dumps(info, indent=1, default=float) + "\n")
    (args.out / "metrics_cpu.md").write_text(markdown(info))
    print(f"wrote {args.out / 'metrics_cpu.json'} and {args.out / 'metrics_cpu.md'}")
    return 0


def load(values) -> str:
    """Load averages as ``a/b/c``."""
    return "/".join(f"{x:.2f}" for x in values)


def verdict(seconds: float) -> str:
    """Whether the full suite met the 20 s target."""
    return "reached" if seconds <= 20.0 else "not reached"


def fmt(value, spec: str) -> str:
    """``value`` formatted with ``spec``; empty for None."""
    return "" if value is None else format(value, spec)


def markdown(info: dict) -> str:
    """The main report as Markdown."""
    m = info["machine"]
    dlib = info.get("dlib_timing_json_entry_point_seconds", {})
    dlib_key = {
        "mig": "mig",
        "sap": "sap",
        "modularity_explicitness": "modularity_explicitness",
        "unsupervised": "unsupervised",
        "irs": "irs",
        "beta_vae (incl. sampling)": "beta_vae",
        "factor_vae (incl. sampling)": "factor_vae",
        "dci": "dci",
    }
    s = info["suite_seconds"]
    chen, study = info["mig_chen_fast_grid"], info["mig_chen_study_sixteenth_grid"]
    lines = [
        "# Metric speed on CPU (python -m tools.perf.metrics_speed)",
        "",
        f"Machine: {m['cpu_model']}, {m['cpus_usable']} usable cores ({m['cpu_count']} online); "
        f"Python {m['python']}, numpy {m['numpy']}, scipy {m['scipy']}, scikit-learn {m['scikit_learn']}, "
        f"joblib {m['joblib']}. Load average {load(info['loadavg_start'])} at the start, "
        f"{load(info['loadavg_end'])} at the end"
        + (
            ": other jobs shared the machine, so the wall-clock times are upper bounds of a quiet machine's."
            if info["loadavg_start"][0] > 1.5
            else " (the script's own threads; nothing else ran)."
        ),
        "",
        f"Setup: {info['setup']}; our fits use n_jobs={info['n_jobs']}; both sides one BLAS thread "
        "(as dlib's own timings, OMP_NUM_THREADS=1). The naive baseline runs in the same process on the "
        "same arrays.",
        "",
        "| metric | ours wall (s) | ours CPU (s) | naive wall (s) | naive CPU (s) | speedup (wall) "
        "| max abs diff of scores | dlib timing.json (s) | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in info["rows"]:
        lines.append(
            f"| {r['metric']} | {r['ours_s']:.3f} | {r['ours_cpu_s']:.3f} | {fmt(r['naive_s'], '.3f')} "
            f"| {fmt(r['naive_cpu_s'], '.3f')} | {fmt(r['speedup'], '.2f')} "
            f"| {fmt(r['max_abs_diff_vs_naive'], '.2g')} "
            f"| {dlib.get(dlib_key.get(r['metric'], ''), '')} | {r['note']} |"
        )
    lines += [
        "",
        f"**Suite** (MIG, BetaVAE, FactorVAE, DCI, SAP, modularity/explicitness, unsupervised, IRS, plus "
        f"sampling): ours **{s['ours_with_dci']:.1f} s** wall ({s['ours_cpu_with_dci']:.1f} s CPU) "
        "with the exact "
        f"`dci`; {s['ours_with_dci_fast']:.1f} s with `dci_fast` instead; the naive baseline "
        f"{s['naive_with_dci']:.1f} s wall ({s['naive_cpu_with_dci']:.1f} s CPU), "
        f"x{info['suite_speedup']:.2f}. "
        "disentanglement_lib's own run (timing.json, a quiet 2-core machine): about 112 s. "
        f"Target 20 s on 2 cores: {verdict(s['ours_with_dci'])} with the exact `dci` "
        f"({verdict(s['ours_with_dci_first_call'])}, {s['ours_with_dci_first_call']:.1f} s, counting DCI's "
        "first call in a fresh process).",
        "",
        "DCI's 11,300 trees (100 stages x 113 classes) are the ones scikit-learn grows, split for split "
        "(tests/metrics/test_exact_gbt.py): the speedup comes from sorting each code once per fit instead of "
        "at every node, compiled tree growing (numba), and the factors' stages' trees grown side by side on "
        f"{info['n_jobs']} threads (one thread: {info['dci_one_thread_seconds']:.1f} s). The naive "
        "baseline's five factor fits took "
        + ", ".join(f"{t:.1f}" for t in info["dci_naive_factor_cpu_seconds"])
        + " CPU s.",
        "",
        f"mig_chen on the fast thinned grid ({chen['grid_points']} points, n_samples {chen['n_samples']}): "
        f"{chen['seconds']:.2f} s. With Chen et al.'s 10,000 Monte-Carlo samples on 1/16 of the grid "
        f"({study['grid_points']} points; 5 narrow informative and 5 broad uninformative codes): "
        f"{study['seconds']:.1f} s, so about {study['extrapolated_full_grid_seconds'] / 60:.0f} min "
        "on the full "
        "737,280-point grid (extrapolated: the cost is linear in the grid size at fixed n_samples).",
        "",
        f"Sampling 10,000 points in batches of 16: {info['sampling_seconds_train_10000_batch16']:.3f} s"
        " (counted twice in the suite, for train and test).",
        "",
    ]
    return "\n".join(lines)


# -- downstream task, fairness, UDR (--extra) ---------------------------------------------------
# The naive side is dlib's code transcribed: generate_batch_factor_code loops, scikit-learn's
# GradientBoostingClassifier() on numpy's global RNG, one predict per intervention, one
# spearmanr per pair of latents. Ours: metrics.* with classifier_rng = the same global stream's
# seed, so the two must agree to the bit.


def naive_batches(data, encode, n, rs, batch_size=16):
    """``n`` codes and their factors, drawn in dlib's batches of ``batch_size``."""
    codes, factors = [], []
    for start in range(0, n, batch_size):
        f = data.sample_factors(min(batch_size, n - start), rs)
        codes.append(encode(data.sample_observations_from_factors(f, rs)))
        factors.append(f)
    return np.concatenate(codes), np.concatenate(factors)


def naive_predictor(kind):
    """dlib's downstream classifier: boosted trees (``gbt``) or cross-validated logistic regression."""
    if kind == "gbt":
        return ensemble.GradientBoostingClassifier()
    return linear_model.LogisticRegressionCV(Cs=10, cv=sklearn.model_selection.KFold(n_splits=5))


def naive_downstream(data, encode, seed, kind, sizes, n_test):
    """The downstream task as dlib runs it, one classifier per factor and training size: the baseline."""
    np.random.seed(seed)  # noqa: NPY002  (dlib's trees draw from the global RNG)
    rs, scores = np.random.RandomState(seed), {}
    for n in sizes:
        ct, ft = naive_batches(data, encode, n, rs)
        ce, fe = naive_batches(data, encode, n_test, rs)
        acc_train, acc_test = [], []
        for i in range(ft.shape[1]):
            model = naive_predictor(kind).fit(ct, ft[:, i])
            acc_train.append(np.mean(model.predict(ct) == ft[:, i]))
            acc_test.append(np.mean(model.predict(ce) == fe[:, i]))
        short = {"gbt": "gbt", "lr": "lr"}[kind]
        for key, value in (
            ("mean_train_accuracy", np.mean(acc_train)),
            ("mean_test_accuracy", np.mean(acc_test)),
            ("min_train_accuracy", np.min(acc_train)),
            ("min_test_accuracy", np.min(acc_test)),
        ):
            scores[f"downstream_{short}_{n}_{key}"] = float(value)
    return scores


def naive_fairness(data, encode, seed, n_train, per_class):
    """The fairness score as dlib computes it: the baseline."""
    np.random.seed(seed)  # noqa: NPY002
    rs = np.random.RandomState(seed)
    sizes = data.factor_sizes
    ct, ft = naive_batches(data, encode, n_train, rs)
    mean_f, max_f = np.zeros((len(sizes),) * 2), np.zeros((len(sizes),) * 2)
    for i in range(len(sizes)):
        model = ensemble.GradientBoostingClassifier().fit(ct, ft[:, i])
        for j in range(len(sizes)):
            if i == j:
                continue
            base = data.sample_factors(per_class, rs)
            counts = np.zeros((sizes[i], sizes[j]), np.int64)
            for c in range(sizes[j]):
                f = base.copy()
                f[:, j] = c
                z = encode(data.sample_observations_from_factors(f, rs))
                counts[:, c] = np.bincount(model.predict(z), minlength=sizes[i])
            mean_f[i, j], max_f[i, j] = metrics.inter_group_fairness(counts)
    return metrics.fairness_scores_from_matrices(mean_f, max_f, per_factor=False)


def naive_udr(means, logvars, correlation):
    """UDR as dlib computes it, one pair of models at a time: the baseline."""
    kl = [np.mean(0.5 * (m**2 + np.exp(v) - v - 1), axis=0) for m, v in zip(means, logvars)]
    reps = [preprocessing.StandardScaler().fit_transform(m) * (k > 0.01) for m, k in zip(means, kl)]
    n = len(reps)
    pair = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if correlation == "lasso":
                corr = np.abs(linear_model.Lasso(alpha=0.1).fit(reps[i], reps[j]).coef_).T
            else:
                corr = np.array(
                    [
                        [
                            abs(scipy.stats.spearmanr(reps[i][:, a], reps[j][:, b])[0])
                            for b in range(reps[j].shape[1])
                        ]
                        for a in range(reps[i].shape[1])
                    ]
                )
            corr = corr[kl[i] > 0.01][:, kl[j] > 0.01]
            pair[i, j] = metrics.relative_strength_disentanglement(corr)
    return {f"udr_{correlation}_model{m}": float(np.median(np.delete(pair[:, m], m))) for m in range(n)}


def udr_group(n_models=5, n_points=1000, n_latents=10, seed=0):
    """Five models of the toy data: permuted, flipped factors + noise latents (KL ~ 2) + 5 dead latents."""
    data, rs = ToyData(), np.random.RandomState(seed)
    x = data.sample_observations_from_factors(data.sample_factors(n_points, rs), rs)  # (n, 5)
    means, logvars = [], []
    for m in range(n_models):
        r = np.random.RandomState(100 + m)
        live = np.concatenate([2 * (x - 0.5) + 0.1 * r.normal(size=x.shape)], axis=1)
        codes = np.concatenate([live, 0.02 * r.normal(size=(n_points, n_latents - 5))], axis=1)
        order = r.permutation(n_latents)
        means.append(codes[:, order] * r.choice([-1.0, 1.0], size=n_latents))
        logvar = np.where(np.arange(n_latents) < 5, np.log(0.01), 0.0)[order]
        logvars.append(np.broadcast_to(logvar, (n_points, n_latents)).copy())
    return means, logvars


def udr_by_model(fn, correlation, means, logvars):
    """The per-model UDR scores of ``fn`` as one flat dict."""
    return {f"udr_{correlation}_model{m}": s[f"udr_{correlation}"] for m, s in enumerate(fn(means, logvars))}


def extra_main(args) -> int:
    """``--extra``: time the downstream task, fairness and UDR against their baselines; write the report."""
    warnings.simplefilter("ignore")
    n_jobs, sizes, n_fair = args.n_jobs, args.extra_train_sizes, args.extra_fairness_train
    info = {
        "machine": machine(),
        "loadavg_start": os.getloadavg(),
        "uptime": os.popen("uptime").read().strip(),
        "n_jobs": n_jobs,
        "setup": f"toy dSprites sizes {SIZES}, 10 codes (5 factors + 5 N(0, 0.1^2) noise codes); downstream "
        f"train sizes {list(sizes)}, 5000 test points; fairness n_train {n_fair}, 100 points per class; "
        "UDR 5 models x 10 latents x 1000 points",
    }
    print(f"{info['machine']['cpu_model']}; {info['uptime']}", flush=True)
    data, rows = ToyData(), []

    def add(name, ours, naive, note=""):
        rows.append(row(name, ours, naive, note))
        r = rows[-1]
        speed = f"x{r['speedup']:5.2f}" if r["speedup"] else ""
        print(
            f"{name:28s} ours {r['ours_s']:7.2f} s  naive {fmt(r['naive_s'], '7.2f')} s  {speed}  "
            f"diff {fmt(r['max_abs_diff_vs_naive'], '.2g')}",
            flush=True,
        )

    def timed_on_data(fn, **kwargs):
        # A registered sampler metric on the toy data, a fresh encoder and rng seed 0.
        return timed(fn, data, make_encoder(), np.random.RandomState(0), **kwargs)

    with single_threaded_blas():
        # Compile (or load) the trees first, so that the timings are of warm code.
        metrics.downstream_task_gbt(
            data, make_encoder(), np.random.RandomState(0), train_sizes=(50,), n_test=50
        )
        kwargs = {"train_sizes": sizes, "n_test": N_TEST, "classifier_rng": np.random.RandomState(0)}
        ours = timed_on_data(metrics.downstream_task_gbt, n_jobs=n_jobs, **kwargs)
        naive = timed(naive_downstream, data, make_encoder(), 0, "gbt", sizes, N_TEST)
        add("downstream_task_gbt", ours, naive, f"presorted trees, {n_jobs} threads; same trees as the naive")
        kwargs["classifier_rng"] = np.random.RandomState(0)
        one = timed_on_data(metrics.downstream_task_gbt, n_jobs=1, **kwargs)
        info["downstream_gbt_one_thread_seconds"] = one[0]
        lr_sizes = tuple(n for n in sizes if n <= 1000)
        ours = timed_on_data(metrics.downstream_task_lr, train_sizes=lr_sizes, n_test=N_TEST)
        naive = timed(naive_downstream, data, make_encoder(), 0, "lr", lr_sizes, N_TEST)
        add(
            f"downstream_task_lr {list(lr_sizes)}",
            ours,
            naive,
            "scikit-learn's LogisticRegressionCV on both sides",
        )
        ours = timed_on_data(
            metrics.fairness, n_train=n_fair, classifier_rng=np.random.RandomState(0), n_jobs=n_jobs
        )
        naive = timed(naive_fairness, data, make_encoder(), 0, n_fair, 100)
        add("fairness", ours, naive, f"presorted trees, {n_jobs} threads; one predict per factor")
        means, logvars = udr_group()
        for correlation in ("lasso", "spearman"):
            fn = metrics.udr_lasso if correlation == "lasso" else metrics.udr_spearman
            ours = timed(udr_by_model, fn, correlation, means, logvars, repeat=3)
            naive = timed(naive_udr, means, logvars, correlation, repeat=3)
            note = (
                "scikit-learn's Lasso on both sides"
                if correlation == "lasso"
                else "ranks once, one matrix product per pair vs one spearmanr per pair of latents"
            )
            add(f"udr_{correlation}", ours, naive, note)
    info["loadavg_end"] = os.getloadavg()
    info["uptime_end"] = os.popen("uptime").read().strip()
    info["rows"] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics_extra_cpu.json").write_text(json.dumps(info, indent=1, default=float) + "\n")
    (args.out / "metrics_extra_cpu.md").write_text(extra_markdown(info))
    print(f"wrote {args.out / 'metrics_extra_cpu.json'} and {args.out / 'metrics_extra_cpu.md'}")
    return 0


def extra_markdown(info: dict) -> str:
    """The ``--extra`` report as Markdown."""
    m = info["machine"]
    lines = [
        "# Downstream task, fairness and UDR speed on CPU (python -m tools.perf.metrics_speed --extra)",
        "",
        f"Machine: {m['cpu_model']}, {m['cpus_usable']} usable cores ({m['cpu_count']} online); Python "
        f"{m['python']}, numpy {m['numpy']}, scipy {m['scipy']}, scikit-learn {m['scikit_learn']}. "
        f"Load: `{info['uptime']}` at the start, `{info['uptime_end']}` at the end"
        + (
            " -- other jobs shared the machine: the wall-clock times are upper bounds of a quiet machine's."
            if info["loadavg_start"][0] > 1.5
            else "."
        ),
        "",
        f"Setup: {info['setup']}. Both sides one BLAS thread, in the same process; the naive side is dlib's "
        "code transcribed (scikit-learn's GradientBoostingClassifier() on numpy's global RNG, one predict "
        "per intervention, one spearmanr per pair of latents). Ours is seeded with the same stream, so the "
        "scores must agree (max abs diff column).",
        "",
        "| metric | ours wall (s) | ours CPU (s) | naive wall (s) | naive CPU (s) | speedup (wall) "
        "| max abs diff of scores | note |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in info["rows"]:
        lines.append(
            f"| {r['metric']} | {r['ours_s']:.3f} | {r['ours_cpu_s']:.3f} | {fmt(r['naive_s'], '.3f')} "
            f"| {fmt(r['naive_cpu_s'], '.3f')} | {fmt(r['speedup'], '.2f')} "
            f"| {fmt(r['max_abs_diff_vs_naive'], '.2g')} | {r['note']} |"
        )
    lines += [
        "",
        f"Downstream boosted trees on one thread: {info['downstream_gbt_one_thread_seconds']:.1f} s.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
