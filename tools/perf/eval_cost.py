"""One model's evaluation at the study's metric set: seconds per metric and stage, and a dlib-style baseline.

    python -m tools.perf.eval_cost [--dataset dsprites] [--fraction 0.1] [--repeats 2] [--out results/perf]

The metric set is the ``paper`` suite's for the dataset, less its additions:
every metric of disentanglement_lib's unsupervised_study_v1
(benchmarks/protocols/unsupervised_study_v1.toml) at the study's settings, on the
mean and on the sampled representation (18 entries). The model is a dlib_conv
beta-VAE with TF init and 10 latents, untrained (seed 0), or ``--checkpoint``'s:
the cost of the metrics does not depend on training except through the trees'
splits.

1. **Ours, whole** (``full``): ``benchmarks.runner.evaluate.evaluate_encoder``
   as ``vaebench run`` calls it, with ``--workers`` (the runner's
   ``--eval-workers``). Per metric: wall seconds, split into ``encode`` (the
   encoder's forward passes: each grid point once, or the whole grid ahead
   and the lookups' short passes, ``evaluate.CachedEncoder``), ``sample`` (looking the
   codes up, the sampled representation's noise) and ``fit`` (the rest: drawing
   factors, the metric's estimators). The plan's estimate for the same
   evaluation is printed beside it.
2. **Encoding** alone, on 16,384 grid points: images/s and the share of the
   machine's fp32 matmul rate (a 2,048 x 2,048 product, same threads), for the
   model's own ``encode`` in the recorded 1,024-image passes, the runner's
   (``encode_for_scoring``: ReLUs in place; the leading convolutions on oneDNN's blocked tensors,
   else the first convolution fused; passes of 256 on a CPU, run as sub-passes side by side,
   ``encode_passes``) and faster settings; whether each gives the model's codes to the bit.
3. **Against a dlib-style evaluation**, paired: both at ``--fraction`` of the
   study's sizes (train, test and vote counts scaled; the downstream task keeps
   its train sizes up to the fraction of 10,000), alternating baseline and ours
   ``--repeats`` times. The baseline is the straightforward port: every
   metric call encodes the images it is handed, at the metric's own batch size
   (dlib's ``representation_function`` per batch), nothing cached; the sampled
   representation draws its noise per call; scikit-learn's own boosted trees
   for DCI and the downstream task; one worker. Its whole-study time is
   extrapolated linearly from the fraction (a lower bound: the trees grow
   faster than linearly with the points).

With ``--record``, the record ``vaebench run`` wrote for the checkpoint's run: its
suite, steps and evaluation commit are stated, and the whole evaluation's scores
are compared with the record's, key by key (equal to the bit, or how far moved).

Writes ``eval_cost_<device>.json`` and ``.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.datasets import load_dataset, to_float
from benchmarks.report.presentation import higher_is_better
from benchmarks.runner import provenance
from benchmarks.runner.blocked_convs import BlockedConvs
from benchmarks.runner.encoding import FORWARD_BATCH, ScoringPasses, encode_for_scoring
from benchmarks.runner.estimate import estimate_evaluation_seconds
from benchmarks.runner.evaluate import (
    DEFAULT_OPTIONS,
    CachedEncoder,
    EvaluationOptions,
    evaluate_encoder,
    metric_entry,
)
from benchmarks.runner.first_conv import FirstConvCheck
from benchmarks.runner.protocol import load_reference
from benchmarks.runner.records import read_record
from benchmarks.runner.suite import expand_suite, load_suite
from metrics import get_metric
from vae_zoo import create_model
from vae_zoo.checkpoint import model_from_payload, read_checkpoint

ENCODE_POINTS = 16384
SCALED = ("n_train", "n_test", "n_eval", "n_samples", "n_test_per_class", "n_variance_estimate")


# -- what is evaluated ------------------------------------------------------------------------


def study_metrics(dataset: str) -> dict[str, dict[str, Any]]:
    """The paper suite's metric entries for ``dataset`` that the study scored (its additions left out)."""
    spec = next(s for s in expand_suite(load_suite("paper")) if s.dataset == dataset)
    study = set(load_reference().evaluation["metrics"])
    return {e: dict(s) for e, s in spec.metrics.items() if metric_entry(e)[0] in study}


def spec_for_estimate(dataset: str, metrics: dict[str, dict[str, Any]]):
    """The paper suite's first run on ``dataset`` with ``metrics``: what the plan estimates."""
    spec = next(s for s in expand_suite(load_suite("paper")) if s.dataset == dataset)
    return spec.replace(metrics=metrics)


def scaled(metrics: dict[str, dict[str, Any]], fraction: float) -> dict[str, dict[str, Any]]:
    """The study's settings at ``fraction`` of its sample sizes (batch sizes unchanged)."""
    out = {}
    for entry, settings in metrics.items():
        new = dict(settings)
        for key in SCALED:
            if key in new:
                new[key] = max(1, round(new[key] * fraction))
        if "train_sizes" in new:
            most = max(new["train_sizes"]) * fraction
            new["train_sizes"] = tuple(s for s in new["train_sizes"] if s <= most) or (round(most),)
        out[entry] = new
    return out


def baseline_settings(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """dlib's way: scikit-learn's trees, and the interventions encode at their batch size."""
    out = {}
    for entry, settings in metrics.items():
        function = get_metric(metric_entry(entry)[0]).function
        new = dict(settings)
        if "implementation" in inspect.signature(function).parameters:
            new["implementation"] = "sklearn"
        if "encode_batch_size" in new:
            new["encode_batch_size"] = new["batch_size"]
        out[entry] = new
    return out


# -- encoders that keep time ------------------------------------------------------------------


class TimedCachedEncoder(CachedEncoder):
    """The runner's encoder, adding up the seconds of its forward passes and of its lookups."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.encode_seconds = 0.0
        self.lookup_seconds = 0.0  # lookups and noise, encoding included

    def _fill(self, indices):  # noqa: D102
        started = time.perf_counter()
        super()._fill(indices)
        self.encode_seconds += time.perf_counter() - started

    def posterior_of(self, indices):  # noqa: D102
        started = time.perf_counter()
        try:
            return super().posterior_of(indices)
        finally:
            self.lookup_seconds += time.perf_counter() - started

    def sampled_of(self, indices):  # noqa: D102
        started = time.perf_counter()
        before = self.lookup_seconds
        try:
            return super().sampled_of(indices)
        finally:  # its own posterior_of call is counted once, here
            self.lookup_seconds = before + time.perf_counter() - started


class PerCallEncoder:
    """dlib's ``representation_function``: each call encodes the images it is handed; nothing is kept."""

    def __init__(self, model, dataset, device, eps_seed: int = 0):
        self.model, self.dataset, self.device = model, dataset, device
        self.encoded = 0
        self.encoded_ahead = 0  # nothing is kept, so nothing is encoded ahead
        self.encode_seconds = 0.0
        self.lookup_seconds = 0.0
        self.eps_rng = np.random.RandomState(eps_seed)

    @torch.no_grad()
    def posterior_of(self, indices):
        """Encode the images at ``indices`` now: mean and logvar (n, D) float64."""
        started = time.perf_counter()
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        x = to_float(torch.from_numpy(self.dataset.images_at(indices)).to(self.device))
        mean, logvar = self.model.encode(x)
        self.encoded += len(indices)
        seconds = time.perf_counter() - started
        self.encode_seconds += seconds
        self.lookup_seconds += seconds
        return mean.double().cpu().numpy(), logvar.double().cpu().numpy()

    def mean_of(self, indices):
        """The posterior mean, encoded now."""
        return self.posterior_of(indices)[0]

    def sampled_of(self, indices):
        """One draw per point, its noise drawn now."""
        started = time.perf_counter()
        before = self.lookup_seconds
        mean, logvar = self.posterior_of(indices)
        codes = mean + np.exp(0.5 * logvar) * self.eps_rng.standard_normal(mean.shape)
        self.lookup_seconds = before + time.perf_counter() - started
        return codes


def evaluate_timed(model, dataset, device, metrics, encoder, options=DEFAULT_OPTIONS) -> dict[str, Any]:
    """Every entry of ``metrics`` through ``evaluate_encoder``; per entry its seconds and stages."""
    marks: list[tuple[str, float, float, float, int]] = []

    def on_metric(done: int, total: int, entry: str) -> None:
        marks.append(
            (entry, time.perf_counter(), encoder.encode_seconds, encoder.lookup_seconds, encoder.encoded)
        )

    started = time.perf_counter()
    evaluation, _ = evaluate_encoder(
        model, dataset, device, metrics, 0, on_metric=on_metric, encoder=encoder, options=options
    )
    total = time.perf_counter() - started
    marks.append(
        ("end", time.perf_counter(), encoder.encode_seconds, encoder.lookup_seconds, encoder.encoded)
    )
    per_metric = {}
    for (entry, _, e0, l0, n0), (_, _, e1, l1, n1) in zip(marks, marks[1:]):
        seconds = evaluation.seconds[entry]
        encode, lookup = e1 - e0, l1 - l0
        per_metric[entry] = {
            "seconds": seconds,
            "encode": encode,
            "sample": max(lookup - encode, 0.0),
            "fit": max(seconds - lookup, 0.0),
            "images_encoded": n1 - n0,
        }
    return {
        "seconds": total,
        "per_metric": per_metric,
        "images_encoded": encoder.encoded,
        "images_encoded_ahead": encoder.encoded_ahead,
        "seconds_per_image": encoder.encode_seconds / max(encoder.encoded, 1),
        "scores": evaluation.metrics,
    }


def encoded_how(full: dict) -> str:
    """What the images encoded were: each grid point once, or the grid ahead and short passes."""
    ahead = full.get("images_encoded_ahead", 0)
    if not ahead:
        return "each grid point once"
    return (
        f"the whole grid ahead, {ahead:,}, and {full['images_encoded'] - ahead:,} in the metrics' "
        "lookups' passes under 256 images, whose codes may depend on the pass: each runs, or is "
        "checked once per size"
    )


# -- encoding alone ---------------------------------------------------------------------------


def matmul_rate(device: torch.device) -> float:
    """fp32 GFLOP/s of a 2,048 x 2,048 matrix product on the torch threads (best of 5)."""
    a = torch.randn(2048, 2048, device=device)
    b = torch.randn(2048, 2048, device=device)
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - started)
    return 2 * 2048**3 / best / 1e9


def encoder_flops(model, shape) -> float:
    """FLOPs of one image's forward pass through the encoder (torch's flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.encode(torch.zeros(1, *shape))
    return float(counter.get_total_flops())


def encode_rates(model, dataset, device, repeats: int) -> dict[str, Any]:
    """Images/s of encoding ENCODE_POINTS grid points under each setting, paired; bit-identical or not."""
    indices = np.arange(0, len(dataset), max(1, len(dataset) // ENCODE_POINTS))[:ENCODE_POINTS]
    images = to_float(torch.from_numpy(dataset.images_at(indices)).to(device))
    fast = create_model(
        "beta_vae",
        architecture="dlib_conv",
        init="tf",
        latent_dim=model.config.latent_dim,
        in_channels=model.config.in_channels,
    ).eval()
    fast.load_state_dict(model.state_dict())
    fast = fast.to(device=device, memory_format=torch.channels_last)

    def run(net, batch, mode, channels_last=False, encode=encode_for_scoring, fused=False, blocked=False):
        context = torch.inference_mode if mode == "inference_mode" else torch.no_grad
        first_conv = FirstConvCheck() if fused else None  # one per encoding, as the runner's encoders
        layers = BlockedConvs.of(list(net.encoder)) if blocked else None
        parts = []
        with context():
            for start in range(0, len(images), batch):
                x = images[start : start + batch]
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                parts.append(encode(net, x, first_conv, layers)[0])
        return torch.cat(parts).cpu().numpy()

    def runners(net, channels_last=False, batch=None, blocked=True):  # as CachedEncoder with those options
        out = torch.empty(len(images), net.config.latent_dim)
        encode = ScoringPasses(net, device, channels_last, batch)
        if not blocked:
            encode.blocked = None
        with torch.no_grad():
            for b, mean, _ in encode(len(images), lambda b: images[b]):
                out[b] = mean.cpu()
        return out.numpy()

    def not_in_place(net, x, first_conv, blocked):
        return net.encode(x)

    settings = {
        "model.encode (no_grad, batch 1024)": lambda: run(model, 1024, "no_grad", encode=not_in_place),
        "ReLU in place, batch 1024": lambda: run(model, 1024, "no_grad"),
        "ReLU in place, passes of 256": lambda: run(model, FORWARD_BATCH, "no_grad"),
        "passes of 256, first convolution fused": lambda: run(model, FORWARD_BATCH, "no_grad", fused=True),
        "passes of 256, the convolutions on oneDNN's blocked tensors": lambda: run(
            model, FORWARD_BATCH, "no_grad", blocked=True
        ),
        "the runner's before the blocked tensors (sub-passes of 32 side by side, first convolution fused)": (
            lambda: runners(model, blocked=False)
        ),
        "the runner's on a CPU (sub-passes of 32 side by side, one thread each, blocked tensors)": lambda: (
            runners(model)
        ),
        "inference_mode, batch 1024": lambda: run(model, 1024, "inference_mode"),
        "channels_last, batch 1024": lambda: run(fast, 1024, "inference_mode", channels_last=True),
        "the runner's with --channels-last": lambda: runners(fast, channels_last=True),
        "the runner's with --encode-batch 64 (whole passes of 64 on all threads)": lambda: runners(
            model, batch=64
        ),
    }
    reference = settings["model.encode (no_grad, batch 1024)"]()
    seconds = {name: [] for name in settings}
    identical = {}
    for _ in range(repeats):
        for name, fn in settings.items():
            started = time.perf_counter()
            codes = fn()
            seconds[name].append(time.perf_counter() - started)
            identical[name] = bool(np.array_equal(codes.view(np.int32), reference.view(np.int32)))
    flops = encoder_flops(model.cpu(), dataset.observation_shape)
    model.to(device)
    peak = matmul_rate(device)
    out = {"points": len(indices), "flops_per_image": flops, "matmul_gflops": peak, "settings": {}}
    for name in settings:
        median = statistics.median(seconds[name])
        rate = len(indices) / median
        out["settings"][name] = {
            "seconds": seconds[name],
            "images_per_second": rate,
            "gflops": rate * flops / 1e9,
            "share_of_matmul": rate * flops / 1e9 / peak,
            "bit_identical": identical[name],
        }
    return out


# -- report -----------------------------------------------------------------------------------


#: The named encoding option of the fast run: channels_last, faster than the default on a CPU until
#: the default ran its convolutions on oneDNN's blocked tensors; in eval_cost_cpu.md's encoding tables
#: since, the default is 2-8% ahead, and channels_last does not encode the grid ahead. The default
#: encodes side by side, faster than --encode-batch 64's whole passes.
FAST = EvaluationOptions(channels_last=True)


def describe_record(path: Path) -> dict[str, Any]:
    """The run a ``--record`` is of: its id, suite, steps and the commit that scored it."""
    record = read_record(path)
    scored_by = record.evaluation_provenance or {}
    return {
        "path": str(path),
        "run_id": record.run_id,
        "suite": record.suite,
        "steps": record.spec.get("training", {}).get("steps"),
        "scored_by_commit": scored_by.get("git_commit"),
        "scored_with_uncommitted_changes": bool(scored_by.get("git_dirty")),
        "metrics": record.metrics,
    }


def compare_scores(scores: dict[str, float], recorded: dict[str, float | None]) -> dict[str, Any]:
    """``scores`` against a record's metrics: keys compared, equal to the bit, and each move."""

    def same(a: float, b: float | None) -> bool:
        b = math.nan if b is None else b
        return a == b or (math.isnan(a) and math.isnan(b))

    keys = sorted(set(scores) & set(recorded))
    moved = {k: abs(scores[k] - (math.nan if recorded[k] is None else recorded[k])) for k in keys}
    moved = {k: v for k, v in moved.items() if not same(scores[k], recorded[k])}
    return {
        "compared": len(keys),
        "equal": len(keys) - len(moved),
        "moved": moved,
        "max_move": max(moved.values(), default=0.0),
        "missing_here": sorted(set(recorded) - set(scores)),
        "not_recorded": sorted(set(scores) - set(recorded)),
    }


def comparison_lines(info: dict) -> list[str]:
    """The markdown paragraph on the record, if one was given."""
    if "record" not in info:
        return []
    r = info["record"]
    line = (
        f"The model is run {r['run_id']} of suite {r['suite']} ({r['steps']} steps), whose record "
        f"(`{r['path']}`) was scored by commit {str(r['scored_by_commit'])[:10]}"
        + (" with uncommitted changes" if r.get("scored_with_uncommitted_changes") else "")
    )
    if "against_record" not in info:  # --skip-full: no evaluation at the study's sizes to compare
        return [line + ". Its scores were not compared: there was no whole evaluation (--skip-full).", ""]
    c = info["against_record"]
    line += f". Of the {c['compared']} scores both hold, **{c['equal']} are equal to the bit**"
    if c["moved"]:
        line += f"; {len(c['moved'])} moved, by up to {c['max_move']:.4g}"
        scores = {k: v for k, v in c["moved"].items() if higher_is_better(k) is not None}
        if len(scores) < len(c["moved"]):  # fit diagnostics (train accuracies of the downstream task)
            largest = max(scores, key=scores.get, default=None)
            line += (
                f" ({len(c['moved']) - len(scores)} of them fit diagnostics, keys with no direction; the "
                + (f"scores by up to {scores[largest]:.4g}, {largest}" if largest else "scores not at all")
                + ")"
            )
    extra = len(c["missing_here"]) + len(c["not_recorded"])
    return [line + (f"; {extra} keys are in only one of them." if extra else "."), ""]


def fast_full(args, info, model, dataset, device, metrics) -> None:
    """The whole evaluation with every named fast option; its scores against the default's, if given."""
    fast_metrics = {
        e: {**s, "tie_order": "stable"} if metric_entry(e)[0] == "downstream_task_gbt" else s
        for e, s in metrics.items()
    }
    options = EvaluationOptions(args.workers, FAST.channels_last, FAST.encode_batch)
    model = model.to(memory_format=torch.channels_last)
    encoder = TimedCachedEncoder(model, dataset, device, channels_last=True, encode_batch=FAST.encode_batch)
    print("whole study metric set, fast options ...", flush=True)
    full = evaluate_timed(model, dataset, device, fast_metrics, encoder, options)
    print(f"  {full['seconds']:.1f} s", flush=True)
    info["options"] = {**options.to_dict(), "downstream_task_gbt.tie_order": "stable"}
    info["full"] = {k: v for k, v in full.items() if k != "scores"}
    info["scores"] = full["scores"]
    if "record" in info:
        info["against_record"] = compare_scores(full["scores"], info["record"].pop("metrics"))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "eval_cost_fast_cpu" if device.type == "cpu" else f"eval_cost_fast_{device.type}"
    (args.out / f"{stem}.json").write_text(json.dumps(info, indent=1, default=float) + "\n")
    (args.out / f"{stem}.md").write_text(fast_markdown(info))
    print(f"wrote {args.out / stem}.json and .md")


def fast_markdown(info: dict) -> str:
    """The fast options' report, from its JSON's content."""
    full = info["full"]
    lines = [
        f"# One model's evaluation at the study's metric set, the named fast options ({info['dataset']})",
        "",
        f"Machine: {info['machine']['cpu_model']}, {info['machine']['cpus_usable']} usable cores. "
        "Generated by "
        f"`python -m tools.perf.eval_cost {' '.join(info['argv'])}` on {info['date']}. Options: "
        '`--channels-last` and the downstream task\'s trees with `tie_order = "stable"`, each of which '
        "changes the codes' or the trees' last bits, so neither is a default; the fits on "
        f"{info['workers']} thread(s), as in eval_cost_cpu.md (the defaults), to compare with.",
        "",
        f"Total **{full['seconds']:.1f} s**; {full['images_encoded']:,} images encoded, "
        f"{full['seconds_per_image'] * 1e3:.3f} ms an image.",
        "",
        *comparison_lines(info),
        "| metric | seconds | encode | fit |",
        "|---|---:|---:|---:|",
    ]
    for entry, row in full["per_metric"].items():
        lines.append(f"| {entry} | {row['seconds']:.1f} | {row['encode']:.1f} | {row['fit']:.1f} |")
    return "\n".join(lines) + "\n"


def whole_heading(info: dict) -> list[str]:
    """The heading of the whole evaluation's section, saying so where --skip-full left it out."""
    if not info.get("full_skipped"):
        return ["## Ours, whole", ""]
    fraction = info["paired"]["fraction"]
    return [
        f"## Ours, at {fraction:g} of the study's sizes (--skip-full: no whole evaluation)",
        "",
        "The first paired repeat's run stands in for the whole evaluation below; its figures are not "
        "the study's.",
        "",
    ]


def estimate_sentence(info: dict) -> str:
    """The plan's estimate of the whole evaluation, against the measurement where there is one."""
    sentence = (
        "The plan's estimate for this evaluation (`benchmarks.runner.estimate`, its encoding rate timed "
        f"as the plan times it): {info['estimate_seconds']:.0f} s"
    )
    if info.get("full_skipped"):
        return sentence + ", for the study's sizes: not comparable with the run above."
    return sentence + f", {info['estimate_seconds'] / info['full']['seconds']:.2f}x the measurement."


def markdown(info: dict) -> str:
    """The report, from the JSON's content."""
    m = info["machine"]
    lines = [
        f"# One model's evaluation at the study's metric set ({info['dataset']}, dlib_conv)",
        "",
        f"Machine: {m['cpu_model']}, {m['cpus_usable']} usable cores, torch {m['torch']} "
        f"({m['torch_threads']} threads), BLAS {info['blas_kernel']}; device {info['device']}. "
        f"Generated by `python -m tools.perf.eval_cost {' '.join(info['argv'])}` on {info['date']}.",
        "",
        f"Metric set: {len(info['metrics'])} entries, the study's metrics at its settings on the mean "
        "and the sampled representation. Model: " + info["model"] + ".",
        "",
        *whole_heading(info),
        f"Total **{info['full']['seconds']:.1f} s** with {info['workers']} worker(s); "
        f"{info['full']['images_encoded']:,} images encoded ({encoded_how(info['full'])}), "
        f"{info['full']['seconds_per_image'] * 1e3:.3f} ms an image. " + estimate_sentence(info),
        "",
        *comparison_lines(info),
        "| metric | seconds | encode | sample | fit | images encoded |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for entry, row in info["full"]["per_metric"].items():
        lines.append(
            f"| {entry} | {row['seconds']:.1f} | {row['encode']:.1f} | {row['sample']:.2f} "
            f"| {row['fit']:.1f} | {row['images_encoded']:,} |"
        )
    enc = info["encoding"]
    lines += [
        "",
        "## Encoding",
        "",
        f"{enc['points']:,} grid points; the encoder's forward pass is "
        f"{enc['flops_per_image'] / 1e6:.1f} MFLOP an image; a 2,048 x 2,048 fp32 matmul runs at "
        f"{enc['matmul_gflops']:.0f} GFLOP/s here.",
        "",
        "| setting | images/s | GFLOP/s | share of matmul rate | codes bit-identical to model.encode's |",
        "|---|---:|---:|---:|---|",
    ]
    for name, row in enc["settings"].items():
        lines.append(
            f"| {name} | {row['images_per_second']:,.0f} | {row['gflops']:.0f} "
            f"| {row['share_of_matmul']:.0%} | {'yes' if row['bit_identical'] else 'no'} |"
        )
    p = info["paired"]
    lines += [
        "",
        f"## Against a dlib-style evaluation, at {p['fraction']:g} of the study's sizes",
        "",
        f"Paired, {len(p['ratios'])} repeat(s) (baseline then ours). Ratio baseline/ours per repeat: "
        + ", ".join(f"{r:.1f}x" for r in p["ratios"])
        + f"; median **{statistics.median(p['ratios']):.1f}x**.",
        "",
        "| metric | baseline s | ours s | ratio | baseline images encoded | ours images encoded |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for entry in p["baseline"][0]["per_metric"]:
        b = statistics.median(r["per_metric"][entry]["seconds"] for r in p["baseline"])
        o = statistics.median(r["per_metric"][entry]["seconds"] for r in p["ours"])
        lines.append(
            f"| {entry} | {b:.1f} | {o:.1f} | {b / o if o else math.inf:.1f}x "
            f"| {p['baseline'][0]['per_metric'][entry]['images_encoded']:,} "
            f"| {p['ours'][0]['per_metric'][entry]['images_encoded']:,} |"
        )
    extrapolated = (
        f"Baseline whole-study time, extrapolated linearly from the fraction (a lower bound): "
        f"{p['baseline_extrapolated_seconds']:.0f} s"
    )
    if info.get("full_skipped"):
        extrapolated += ", against no whole evaluation of ours (--skip-full)."
    else:
        extrapolated += (
            f", against ours measured whole: {info['full']['seconds']:.0f} s "
            f"({p['baseline_extrapolated_seconds'] / info['full']['seconds']:.1f}x)."
        )
    return "\n".join([*lines, "", extrapolated, ""])


def main() -> None:
    """Measure, print, write the JSON and the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="dsprites")
    parser.add_argument("--source", default="auto", help="dataset source (auto, official or procedural)")
    parser.add_argument("--checkpoint", type=Path, help="a run's checkpoint (default: an untrained model)")
    parser.add_argument(
        "--fraction", type=float, default=0.1, help="of the study's sizes, for the paired part"
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="n_jobs of the metrics that take it")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-full", action="store_true", help="leave out the whole evaluation (a dry run)")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="only the whole evaluation, with the named options that are faster (channels_last, the "
        "downstream trees' stable tie order), to eval_cost_fast_<device>.*",
    )
    parser.add_argument(
        "--record", type=Path, help="the checkpoint's run record: compare the whole evaluation's scores to it"
    )
    parser.add_argument("--out", type=Path, default=Path("results/perf"))
    args = parser.parse_args()
    device = torch.device(args.device)
    dataset = load_dataset(args.dataset, args.source)
    if args.checkpoint:
        model = model_from_payload(read_checkpoint(args.checkpoint))
        described = f"the checkpoint {args.checkpoint.name}"
    else:
        torch.manual_seed(0)
        model = create_model(
            "beta_vae",
            architecture="dlib_conv",
            init="tf",
            latent_dim=10,
            in_channels=dataset.observation_shape[0],
        )
        described = "an untrained dlib_conv beta-VAE (seed 0, TF init, 10 latents)"
    model = model.to(device).eval()
    study = study_metrics(args.dataset)
    # n_jobs for every metric that takes it, as the runner's --fit-jobs
    fit_options = EvaluationOptions(args.workers)

    info: dict[str, Any] = {
        "argv": [a for a in __import__("sys").argv[1:]],
        "date": time.strftime("%Y-%m-%d"),
        "dataset": f"{args.dataset} ({dataset.provenance().get('source', args.source)})",
        "device": str(device),
        "machine": provenance.machine(device),
        "blas_kernel": ", ".join(sorted({b.get("architecture") or "?" for b in provenance.blas()})),
        "model": described,
        "workers": args.workers,
        "metrics": list(study),
        "estimate_seconds": estimate_evaluation_seconds(spec_for_estimate(args.dataset, study), device),
    }
    if args.record:
        info["record"] = describe_record(args.record)
    if args.fast:
        fast_full(args, info, model, dataset, device, study)
        return
    print(f"encoding rates on {ENCODE_POINTS:,} points ...", flush=True)
    info["encoding"] = encode_rates(model, dataset, device, args.repeats)

    small = scaled(study, args.fraction)
    paired = {"fraction": args.fraction, "baseline": [], "ours": [], "ratios": []}
    for repeat in range(args.repeats):
        print(f"paired repeat {repeat + 1}/{args.repeats}: baseline ...", flush=True)
        base = evaluate_timed(
            model, dataset, device, baseline_settings(small), PerCallEncoder(model, dataset, device)
        )
        print(f"  baseline {base['seconds']:.1f} s; ours ...", flush=True)
        ours = evaluate_timed(
            model,
            dataset,
            device,
            small,
            TimedCachedEncoder(model, dataset, device),
            fit_options,
        )
        print(f"  ours {ours['seconds']:.1f} s", flush=True)
        paired["baseline"].append({k: v for k, v in base.items() if k != "scores"})
        paired["ours"].append({k: v for k, v in ours.items() if k != "scores"})
        paired["ratios"].append(base["seconds"] / ours["seconds"])
    paired["baseline_extrapolated_seconds"] = (
        statistics.median(r["seconds"] for r in paired["baseline"]) / args.fraction
    )
    info["paired"] = paired

    if not args.skip_full:
        print("ours, whole study metric set ...", flush=True)
        full = evaluate_timed(
            model, dataset, device, study, TimedCachedEncoder(model, dataset, device), fit_options
        )
        info["full"] = {k: v for k, v in full.items() if k != "scores"}
        print(f"  {full['seconds']:.1f} s", flush=True)
        if "record" in info:
            info["against_record"] = compare_scores(full["scores"], info["record"].pop("metrics"))
    else:
        info["full"] = paired["ours"][0]
        info["full_skipped"] = True
        info.get("record", {}).pop("metrics", None)  # nothing to compare them with
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "eval_cost_cpu" if device.type == "cpu" else f"eval_cost_{device.type}"
    (args.out / f"{stem}.json").write_text(json.dumps(info, indent=1, default=float) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(info))
    print(f"wrote {args.out / stem}.json and .md")


if __name__ == "__main__":
    main()
