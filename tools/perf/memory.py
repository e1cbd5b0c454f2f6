"""Peak memory and training throughput: the whole cache materialised (the old path) vs. read by index.

Usage::

    python -m tools.perf.memory        # dSprites and 3D Shapes, 200 steps each -> results/perf/memory_cpu.*
    python -m tools.perf.memory --datasets dsprites --steps 100 --out /tmp/memory   # not results/perf

Every measurement runs in its own subprocess, so each peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of that child) is one path's
alone. Per dataset:

* ``prepare``: ``load_dataset`` (builds the cache if missing: generation,
  bit-packing, hashing) -- the figure of a first run;
* ``baseline``: the old path, kept below as ``baseline_images``: the whole
  cache as one uint8 tensor in RAM (``as_tensor``), batches by ``sample_batch``;
* ``memmap``: the new path, ``training_images("cpu")``: each batch read from
  the cache file by index (``storage.CacheReader``), nothing materialised.

``--suites smoke quick`` also runs whole suites, training and evaluation, as
a user does (``python -m benchmarks.cli run --suite NAME --device cpu`` into a
temporary output directory), and reports each one's peak RSS (the child's
``ru_maxrss`` from ``os.wait4``) and wall time: the targets (1.5 GB
for smoke and quick on dSprites) are about these whole runs, whose peak lies in
the evaluation, not in training.

Both train the same model from the same seed for ``--steps`` steps and must
give the same loss to the last bit (checked); throughput is images/s over the
steps after a short warm-up, and the ratio new/baseline is printed (the target:
no drop beyond 5%). Also timed: the full content check done on every load
(``FlatCache.check_content``) and the gather of one batch alone.

The training step is the runner's own, ``benchmarks.runner.train.train_run``
(named in the output as ``loop``). Results go to results/perf/memory_cpu.md and
.json with the machine and load. Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.runner import provenance

REPO = Path(__file__).resolve().parents[2]

DATASETS = ("dsprites", "shapes3d")
MODES = ("baseline", "memmap")


def rss_now_mb() -> float:
    """This process's resident memory now, in MB (VmRSS from /proc; NaN where there is none)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- the old path, kept for comparison ------------------------------------------------
def baseline_images(dataset):
    """What training read before: the whole cache materialised as one uint8 tensor (N, C, 64, 64)."""
    from benchmarks.datasets import TrainingImages

    return TrainingImages(dataset.as_tensor("cpu"))


# -- the training step ----------------------------------------------------------------
def train_with_train_run(dataset, images, steps: int, batch_size: int, seed: int) -> dict:
    """Train beta_vae on ``images`` through the runner's ``train_run``; its speed and final loss."""
    from benchmarks.runner.spec import RunSpec
    from benchmarks.runner.train import train_run

    spec = RunSpec(
        suite="perf-memory",
        dataset=dataset.name,
        model="beta_vae",
        model_config={"likelihood": dataset.likelihood, "in_channels": dataset.observation_shape[0]},
        seed=seed,
        training={
            "steps": steps,
            "batch_size": batch_size,
            "optimizer": "adam",
            "learning_rate": 1e-4,
            "precision": "fp32",
            "log_every": 10,
            "checkpoint_every": 10**9,
        },
        metrics={},
        dataset_source="procedural",
    )
    import torch

    result = train_run(spec, images, torch.device("cpu"), None)
    return {
        "loop": "benchmarks.runner.train.train_run",
        "images_per_second": result.images_per_second,
        "final_loss": result.final.get("loss"),
    }


def time_batches(images, batch_size: int, n: int = 300) -> float:
    """Microseconds to gather and convert one batch alone."""
    import torch

    g = torch.Generator().manual_seed(1)
    indices = [torch.randint(images.num_images, (batch_size,), generator=g) for _ in range(n)]
    for index in indices[:20]:
        images.batch(index)
    started = time.perf_counter()
    for index in indices:
        images.batch(index)
    return (time.perf_counter() - started) / n * 1e6


# -- one measurement, in a child process -----------------------------------------------
def child(mode: str, name: str, steps: int, batch_size: int) -> dict:
    """One measurement (``prepare``, ``baseline`` or ``memmap``) of one dataset, in this process."""
    from benchmarks.datasets import load_dataset

    record = {"mode": mode, "dataset": name}
    started, started_wall = time.perf_counter(), time.time()
    dataset = load_dataset(name, "procedural", progress=False)  # builds if missing; checks content in full
    record["load_seconds"] = time.perf_counter() - started
    cache = dataset._cache
    # written by this process: the cache was missing and was generated here (its peak includes that)
    record["cache_built"] = cache.array_path.stat().st_mtime >= started_wall
    record["cache_bytes"] = cache.array_path.stat().st_size
    record["cache_packed"] = bool(cache.manifest().get("packed"))
    if mode == "prepare":
        started = time.perf_counter()
        assert cache.check_content() is None
        record["content_check_seconds"] = time.perf_counter() - started
        record["peak_rss_mb"] = peak_rss_mb()
        return record
    started = time.perf_counter()
    images = baseline_images(dataset) if mode == "baseline" else dataset.training_images("cpu")
    record["images_seconds"] = time.perf_counter() - started
    record["rss_after_images_mb"] = rss_now_mb()
    record["batch_microseconds"] = time_batches(images, batch_size)
    record.update(train_with_train_run(dataset, images, steps, batch_size, seed=0))
    record["peak_rss_mb"] = peak_rss_mb()
    import torch

    record["torch_threads"] = torch.get_num_threads()
    return record


def run_child(mode: str, name: str, args) -> dict:
    """Run ``child`` in a fresh process (``--child MODE``), so that its peak RSS is its own; its record."""
    command = [
        sys.executable,
        "-m",
        "tools.perf.memory",
        "--child",
        mode,
        "--datasets",
        name,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} {name} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_suite(suite: str) -> dict:
    """One whole suite as a user runs it (training + evaluation), in a child whose peak RSS is taken."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f"vaebench-memory-{suite}-") as out:
        command = [sys.executable, "-m", "benchmarks.cli", "run", "--suite", suite, "--device", "cpu"]
        command += ["--out", out]
        started = time.perf_counter()
        child_process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        output = child_process.stdout.read()
        _, status, usage = os.wait4(child_process.pid, 0)
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise RuntimeError(f"suite {suite} failed (exit {code}):\n{output[-4000:]}")
        runs = len(list(Path(out, "runs", suite).glob("*.json")))
    return {"suite": suite, "runs": runs, "peak_rss_mb": usage.ru_maxrss / 1024, "wall_seconds": seconds}


def load_average() -> str:
    """The machine's load, as ``uptime`` prints it (or the three load averages)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    """Measure every dataset's paths in paired child processes, then whole suites, and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="pairs of (baseline, new) processes")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "results" / "perf",
        help="the directory of memory_cpu.json and .md (default: results/perf)",
    )
    parser.add_argument(
        "--suites",
        nargs="*",
        default=["smoke"],
        help="whole suites to run for their peak RSS (quick takes ~20 min on 2 cores); none: skip",
    )
    parser.add_argument("--child", choices=("prepare", *MODES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.datasets[0], args.steps, args.batch_size)))
        return

    machine = {**provenance.machine(), "load_before": load_average()}
    print(f"{machine['cpu_model']}, {machine['cpu_count']} cores; {machine['load_before']}", flush=True)
    results = []
    for name in args.datasets:
        # prepare once, then the two paths in pairs, alternating which goes first (one process's
        # throughput varies by several % run to run on this machine; a pair shares the moment)
        order = [("prepare", 0)]
        for repeat in range(args.repeats):
            order += [(mode, repeat) for mode in (MODES if repeat % 2 == 0 else MODES[::-1])]
        for mode, repeat in order:
            record = run_child(mode, name, args)
            record["repeat"] = repeat
            results.append(record)
            shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in record.items()}
            print(json.dumps(shown), flush=True)
    suites = []
    for suite in args.suites:  # after the dataset children: the caches are built by then
        suites.append(run_suite(suite))
        print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in suites[-1].items()}))
    machine["load_after"] = load_average()

    summary = {}
    for name in args.datasets:
        mine = [r for r in results if r["dataset"] == name]
        prepared = next(r for r in mine if r["mode"] == "prepare")
        pairs = [
            (
                next(r for r in mine if r["mode"] == "baseline" and r["repeat"] == k),
                next(r for r in mine if r["mode"] == "memmap" and r["repeat"] == k),
            )
            for k in range(args.repeats)
        ]
        base, new = pairs[0]
        ratios = [n["images_per_second"] / b["images_per_second"] for b, n in pairs]
        summary[name] = {
            "peak_rss_mb": {
                "prepare": prepared["peak_rss_mb"],
                "baseline": max(b["peak_rss_mb"] for b, _ in pairs),
                "memmap": max(n["peak_rss_mb"] for _, n in pairs),
            },
            "images_per_second": {
                "baseline": statistics.median(b["images_per_second"] for b, _ in pairs),
                "memmap": statistics.median(n["images_per_second"] for _, n in pairs),
            },
            "throughput_ratio": statistics.median(ratios),  # median of the paired ratios
            "paired_ratios": ratios,
            "same_final_loss": all(b["final_loss"] == n["final_loss"] for b, n in pairs),
            "batch_microseconds": {
                "baseline": statistics.median(b["batch_microseconds"] for b, _ in pairs),
                "memmap": statistics.median(n["batch_microseconds"] for _, n in pairs),
            },
            "content_check_seconds": prepared["content_check_seconds"],
            "cache_built_by_prepare": prepared.get("cache_built", False),
            "cache_bytes": new["cache_bytes"],
            "cache_packed": new["cache_packed"],
            "loop": new["loop"],
        }
        s = summary[name]
        print(
            f"{name}: peak RSS {s['peak_rss_mb']['baseline']:,.0f} -> {s['peak_rss_mb']['memmap']:,.0f} MB; "
            f"{s['images_per_second']['baseline']:,.0f} -> {s['images_per_second']['memmap']:,.0f} img/s "
            f"(ratio {s['throughput_ratio']:.3f}); same loss: {s['same_final_loss']}"
        )
    report = {
        "argv": sys.argv[1:] if argv is None else list(argv),
        "machine": machine,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "summary": summary,
        "suites": suites,
        "runs": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / "memory_cpu"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {stem.with_suffix('.md')} and .json")


def markdown(report: dict) -> str:
    """The report as Markdown: one table row per dataset, then the whole suites."""
    m = report["machine"]
    lines = [
        "# Memory and throughput: whole cache in RAM vs. batches read by index",
        "",
        f"From `{' '.join(['python -m tools.perf.memory', *report.get('argv', [])])}` "
        f"({report['steps']} training steps, batch "
        f"{report['batch_size']}, beta_vae, fp32, CPU). Machine: {m['cpu_model']}, {m['cpu_count']} cores. "
        f"Load before: `{m['load_before']}`; after: `{m['load_after']}`. Each measurement is one "
        f"subprocess; peak RSS is its `ru_maxrss` (the largest of {report.get('repeats', 1)}). The two paths "
        f"ran in {report.get('repeats', 1)} pairs of processes, alternating which went first; images/s "
        "and gather times are medians, the ratio is the median of the paired ratios (listed below the "
        "table: they show the run-to-run spread of one process's throughput).",
        "",
        "| dataset | cache on disk | check on load | peak RSS prepare | peak RSS baseline | peak RSS new "
        "| img/s baseline | img/s new | ratio | batch gather baseline / new | same loss |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in report["summary"].items():
        packed = "bit-packed" if s["cache_packed"] else "uint8"
        lines.append(
            f"| {name} | {s['cache_bytes'] / 1e6:,.0f} MB {packed} | {s['content_check_seconds']:.2f} s "
            f"| {s['peak_rss_mb']['prepare']:,.0f} MB | {s['peak_rss_mb']['baseline']:,.0f} MB "
            f"| {s['peak_rss_mb']['memmap']:,.0f} MB | {s['images_per_second']['baseline']:,.0f} "
            f"| {s['images_per_second']['memmap']:,.0f} | {s['throughput_ratio']:.3f} "
            f"| {s['batch_microseconds']['baseline']:,.0f} / {s['batch_microseconds']['memmap']:,.0f} us "
            f"| {s['same_final_loss']} |"
        )
    lines.append("")
    for name, s in report["summary"].items():
        if "paired_ratios" in s:
            shown = ", ".join(f"{r:.3f}" for r in s["paired_ratios"])
            lines.append(f"Paired ratios new/baseline, {name}: {shown}.")
    loops = sorted({s["loop"] for s in report["summary"].values()})
    lines += [
        "",
        f"Training loop: {', '.join(loops)}. 'check on load' is the full content check (sha256 of every "
        "4 MiB chunk against the manifest) that `prepare` does once per process; 'peak RSS prepare' is a "
        "process that only loads and checks the cache"
        + (
            f"; for {', '.join(built)} the cache was missing and that process generated it first, so its "
            "peak includes the generation."
            if (built := [n for n, s in report["summary"].items() if s.get("cache_built_by_prepare")])
            else " (already built)."
        ),
        "",
    ]
    if report.get("suites"):
        lines += [
            "## Whole suites: training and evaluation",
            "",
            "`vaebench run --suite NAME --device cpu` into an empty output directory (dataset caches "
            "present), as a user runs it; peak RSS of that process (`ru_maxrss` from `os.wait4`).",
            "",
            "| suite | runs | peak RSS | wall |",
            "|---|---|---|---|",
        ]
        for s in report["suites"]:
            lines.append(
                f"| {s['suite']} | {s['runs']} | {s['peak_rss_mb']:,.0f} MB | {s['wall_seconds']:,.0f} s |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
