"""Does bf16 autocast change results? fp32- and bf16-trained runs of the quick suite, side by side.

    python -m tools.perf.precision_check [--steps 500] [--seeds 0,1,2] [--out results/perf]

Trains a few models of the quick suite (``benchmarks/suites/quick.toml``: its
hyperparameters, batch size and learning rate, at a reduced step count) on
procedural dSprites, each seed once in fp32 and once in bf16 autocast, with
``train_run`` on the CPU: the suite's ``RunSpec`` with only its precision
changed, on the dataset's ``training_images`` (what the runner trains on).
Every run is scored with a few cheap metrics at their "fast" settings (through
``evaluate_run``) and with its ELBO terms on a fixed held-out set of 2,048
images, evaluated in fp32 with fixed noise, so both precisions are judged by
the same yardstick.

For each model and quantity it reports the mean and the seed standard deviation
per precision, the difference of the means in units of the seed standard
deviation, and the paired difference (same seed: same initial weights, same
batches and noise; only the arithmetic differs). Writes ``precision_cpu.json``
and ``precision_cpu.md``.

What this can show: whether switching precision moves a result by more than
changing the seed does, at this budget. What it cannot: a systematic shift
smaller than about one seed standard deviation (three seeds give little
power), or what happens after the full 300,000 steps; and CPU bf16 autocast
covers a different list of ops than CUDA's, so it is evidence for the GPU
default, not proof.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.stats
import torch

from benchmarks.datasets import TrainingImages, load_dataset
from benchmarks.runner import provenance
from benchmarks.runner.evaluate import evaluate_run
from benchmarks.runner.spec import RunTraining, thaw
from benchmarks.runner.suite import SuiteError, expand_suite, load_suite, override_suite
from benchmarks.runner.train import train_run
from vaebench.registry import UnknownNameError

ROOT = Path(__file__).resolve().parents[2]

HELD_OUT = 2048


@torch.no_grad()
def held_out_elbo(model, images: TrainingImages, device: torch.device) -> dict[str, float]:
    """Reconstruction, KL and loss on fixed images with fixed noise, in fp32 (the same for every run)."""
    g = torch.Generator().manual_seed(12345)
    index = torch.randint(images.num_images, (HELD_OUT,), generator=g)
    noise = torch.randn(HELD_OUT, model.config.latent_dim, generator=g)
    model = model.to(device).eval()
    totals = {"heldout_reconstruction": 0.0, "heldout_kl": 0.0}
    for start in range(0, HELD_OUT, 512):
        x = images.batch(index[start : start + 512])
        out = model(x, step=0, noise=noise[start : start + 512].to(device))
        totals["heldout_reconstruction"] += out.reconstruction.item() * len(x) / HELD_OUT
        totals["heldout_kl"] += out.kl.item() * len(x) / HELD_OUT
    totals["heldout_elbo_loss"] = totals["heldout_reconstruction"] + totals["heldout_kl"]
    return totals


def summarise(values: dict[str, dict[int, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per quantity: means, seed stds, |difference of means| / pooled seed std, paired differences."""
    fp32, bf16 = values["fp32"], values["bf16"]
    seeds = sorted(set(fp32) & set(bf16))
    out = {}
    for key in fp32[seeds[0]]:
        a = [fp32[s][key] for s in seeds]
        b = [bf16[s][key] for s in seeds]
        if not all(math.isfinite(v) for v in a + b):
            out[key] = {"fp32": a, "bf16": b, "note": "non-finite values"}
            continue
        sa, sb = statistics.stdev(a), statistics.stdev(b)
        pooled = math.sqrt((sa**2 + sb**2) / 2)
        diff = statistics.fmean(b) - statistics.fmean(a)
        paired = [y - x for x, y in zip(a, b)]
        welch = scipy.stats.ttest_ind(b, a, equal_var=False).pvalue if sa + sb > 0 else float(diff != 0)
        out[key] = {
            "fp32_mean": statistics.fmean(a),
            "fp32_seed_std": sa,
            "bf16_mean": statistics.fmean(b),
            "bf16_seed_std": sb,
            "mean_difference": diff,
            "difference_in_seed_stds": abs(diff) / pooled if pooled > 0 else (0.0 if diff == 0 else math.inf),
            "welch_p": float(welch) if math.isfinite(welch) else 1.0,
            "paired_differences": paired,
            "max_abs_paired_difference_in_seed_stds": (
                max(abs(p) for p in paired) / pooled if pooled > 0 else math.inf
            ),
            "fp32": a,
            "bf16": b,
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    """Train each model and seed in fp32 and in bf16 autocast, score both, compare; write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="beta_vae,beta_tcvae")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--metrics", default="mig,sap,dci_fast,modularity_explicitness")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--note", default="", help="a paragraph of interpretation added to the Markdown")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "perf")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    models = args.models.split(",")
    metric_names = args.metrics.split(",")
    # Bad input is refused here, before any training: the comparison is made after every run.
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, e.g. 0,1,2; got {args.seeds!r}")
    if len(set(seeds)) < 2 or len(set(seeds)) != len(seeds):
        parser.error(
            f"--seeds needs at least two different seeds, each once (the precisions are compared in "
            f"units of the seed standard deviation); got {args.seeds!r}"
        )
    try:
        suite = override_suite(
            load_suite("quick"),
            models=models,
            seeds=seeds,
            steps=args.steps,
            metrics=metric_names,
            dataset_source="procedural",
        )
        specs = expand_suite(suite)
    except (SuiteError, UnknownNameError) as exc:
        parser.error(str(exc))
    started_all = time.perf_counter()
    load_start = os.getloadavg()
    dataset = load_dataset("dsprites", "procedural")
    images = dataset.training_images(device)  # what the runner trains on

    runs = []
    for spec in specs:
        for precision in ("fp32", "bf16"):
            s = spec.replace(training=RunTraining(**{**spec.training.to_dict(), "precision": precision}))
            with tempfile.TemporaryDirectory() as tmp:
                trained = train_run(s, images, device, Path(tmp) / "run.pt")
            evaluation = evaluate_run(s, trained.model, dataset, device)
            values = {**evaluation.metrics, **held_out_elbo(trained.model, images, device)}
            values.update({f"final_{k}": trained.final[k] for k in ("loss", "reconstruction", "kl")})
            run = {
                "model": s.model,
                "config": thaw(s.model_config),
                "seed": s.seed,
                "precision": precision,
                "train_seconds": trained.train_seconds,
                "images_per_second": trained.images_per_second,
                "loadavg_1m": os.getloadavg()[0],
                "values": values,
            }
            runs.append(run)
            print(
                f"{s.model} seed {s.seed} {precision}: {trained.images_per_second:.0f} img/s, "
                + ", ".join(
                    f"{k}={v:.4g}" for k, v in values.items() if k in ("mig", "sap", "heldout_elbo_loss")
                ),
                flush=True,
            )

    comparison = {}
    for model in models:
        by_precision = {
            p: {r["seed"]: r["values"] for r in runs if r["model"] == model and r["precision"] == p}
            for p in ("fp32", "bf16")
        }
        comparison[model] = summarise(by_precision)
    speed = {
        p: statistics.median(r["images_per_second"] for r in runs if r["precision"] == p)
        for p in ("fp32", "bf16")
    }
    report = {
        "benchmark": "precision_check",
        "device": "cpu",
        "machine": {**provenance.machine(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        "settings": {
            "suite": "quick",
            "models": models,
            "seeds": seeds,
            "steps": args.steps,
            "batch_size": specs[0].training.batch_size,
            "learning_rate": specs[0].training.learning_rate,
            "metrics": metric_names,
            "metric_settings": "fast",
            "held_out_images": HELD_OUT,
        },
        "runs": runs,
        "comparison": comparison,
        "median_images_per_second": speed,
        "total_seconds": time.perf_counter() - started_all,
        "note": args.note,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precision_cpu.json").write_text(json.dumps(report, indent=2, default=_json) + "\n")
    (args.out / "precision_cpu.md").write_text(markdown(report))
    print(f"wrote {args.out / 'precision_cpu.json'} and .md in {report['total_seconds']:.0f} s")
    return report


def _json(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def markdown(report: dict) -> str:
    """The report as Markdown."""
    m, s = report["machine"], report["settings"]
    lines = [
        "# bf16 autocast vs fp32 on CPU (python -m tools.perf.precision_check)",
        "",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} cores, torch {m['torch']} "
        f"({m['torch_threads']} threads); load "
        f"average {'/'.join(f'{x:.2f}' for x in m['loadavg_start'])} at the start, "
        f"{'/'.join(f'{x:.2f}' for x in m['loadavg_end'])} at the end; "
        f"{report['total_seconds']:.0f} s in all.",
        "",
        f"Setup: the quick suite's {', '.join(s['models'])} (its hyperparameters, batch {s['batch_size']}, "
        f"lr {s['learning_rate']}) on procedural dSprites for **{s['steps']} steps** (the suite runs 3,000), "
        f"seeds {', '.join(map(str, s['seeds']))}, each once in fp32 and once in bf16 autocast. Metrics "
        f"({', '.join(s['metrics'])}) at their fast settings; held-out terms on {s['held_out_images']} fixed "
        "images with fixed noise, evaluated in fp32. Training speed (median): "
        + ", ".join(f"{p} {v:.0f} images/s" for p, v in report["median_images_per_second"].items())
        + ".",
        "",
        "`|diff|/std`: the difference of the two precisions' means over the seeds, in units of the pooled "
        "seed standard deviation. `Welch p`: Welch's t-test of the two sets of seeds (with 3 seeds "
        "per side and some 30 quantities, one or two p < 0.05 are expected by chance). `max paired/std`: "
        "the largest same-seed difference (same initial weights, batches and noise; only the arithmetic "
        "differs), in the same units.",
        "",
    ]
    for model, rows in report["comparison"].items():
        lines += [
            f"## {model}",
            "",
            "| quantity | fp32 mean (seed std) | bf16 mean (seed std) | bf16 - fp32 | abs diff/std "
            "| Welch p | max paired/std |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for key, r in rows.items():
            if "note" in r:
                lines.append(f"| {key} | {r['note']} | | | | | |")
                continue
            lines.append(
                f"| {key} | {r['fp32_mean']:.4g} ({r['fp32_seed_std']:.2g}) | {r['bf16_mean']:.4g} "
                f"({r['bf16_seed_std']:.2g}) | {r['mean_difference']:+.3g} | "
                f"{r['difference_in_seed_stds']:.2f} | {r['welch_p']:.2f} | "
                f"{r['max_abs_paired_difference_in_seed_stds']:.2f} |"
            )
        lines.append("")
    worst = [
        (r["difference_in_seed_stds"], model, key)
        for model, rows in report["comparison"].items()
        for key, r in rows.items()
        if "difference_in_seed_stds" in r
    ]
    over = sorted((w for w in worst if w[0] > 1.0), reverse=True)
    lines += ["## Reading", ""]
    if not over:
        lines.append(
            f"All {len(worst)} quantities differ between the precisions by less than one seed standard "
            f"deviation: at {s['steps']} steps bf16 moves none of these results by more than a change of "
            "seed does."
        )
    else:
        lines.append(
            f"{len(worst) - len(over)} of {len(worst)} quantities differ between the precisions by less than "
            f"one seed standard deviation; {len(over)} by more: "
            + ", ".join(f"{model} {key} ({d:.2f})" for d, model, key in over)
            + ". On those this run does **not** show that bf16 agrees with fp32 within seed noise."
        )
    significant = [
        f"{model} {key} (p = {r['welch_p']:.3f})"
        for model, rows in report["comparison"].items()
        for key, r in rows.items()
        if r.get("welch_p", 1.0) < 0.05
    ]
    lines += [
        "",
        f"Welch p < 0.05: {', '.join(significant) if significant else 'none'} "
        f"(of {len(worst)} quantities; about {0.05 * len(worst):.1f} expected by chance alone).",
    ]
    lines += [
        "",
        "Limits: with three seeds a difference of the means below about one seed standard deviation cannot "
        'be told from noise, so agreement here means "no larger than a change of seed", not "equal"; '
        f"the runs are {s['steps']} steps long, not a full-length run; CPU autocast casts a different list "
        "of ops than CUDA's.",
        "",
    ]
    if report.get("note"):
        lines += ["## Note", "", report["note"], ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
