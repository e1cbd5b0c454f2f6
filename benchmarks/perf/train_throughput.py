"""Training throughput on one device: a reference-style baseline, our single-model path, packed runs.

    python benchmarks/perf/train_throughput.py [--device auto] [--quick] [--out results/perf]

Model: beta_vae (beta 4) on the locatello architecture (Locatello et al. 2019,
about 0.7 M parameters), 10 latents, batch 64, Adam at lr 1e-4, on random
dSprites-like binary images (64x64, about 10% of pixels on; throughput does
not depend on the pixels). Configurations, all measured in one run on one device:

(a) ``baseline``: the way reference implementations train (disentangling-vae,
    disentanglement-pytorch): a ``torch.utils.data.Dataset`` of float images, a
    shuffling ``DataLoader`` (batches collated on the host and copied to the
    device), one model, eager fp32, ``torch.optim.Adam`` with its defaults, and
    ``loss.item()`` every step.
(b) ``single``: ``benchmarks.runner.train.train_run`` as the runner calls it,
    with ``precision="auto"`` (the default the runner picks for the device),
    and also with the other precision.
    ``step:*``: variations of train_run's step, to choose that default (Adam
    foreach/fused/for-loop, bf16 autocast, channels_last, torch.compile; on
    CUDA also TF32, a CUDA graph of the whole step, compile "reduce-overhead").
(c) ``packed:N``: ``benchmarks.runner.packing.train_packed`` with N runs
    (N = 1, 6, 36; different seeds); images/s is the aggregate over the N runs.

Configurations are measured round-robin (repeat 1 of every configuration, then
repeat 2, ...) so that load from other jobs on a shared machine spreads over
all of them; the median of the repeats is reported with the load average at
each repeat. Evaluation time (encoding the metric samples and the metric suite
at its "fast" settings, through ``evaluate_run``) is timed once for one model.

Writes ``train_<device>.json`` (``<device>``: ``cpu`` or the GPU's short name,
e.g. ``h200``) and ``train_<device>.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks.datasets import sample_batch, to_float  # noqa: E402
from benchmarks.runner.packing import train_packed  # noqa: E402
from benchmarks.runner.records import cpu_model  # noqa: E402
from benchmarks.runner.train import _autocast, _close_window, _Window, resolve_precision, train_run  # noqa: E402
from vae_zoo import create_model  # noqa: E402

MODEL, BETA, ARCHITECTURE, LATENT, BATCH, LR = "beta_vae", 4.0, "locatello", 10, 64, 1e-4
LOG_EVERY = 100  # train_run's default window: one host read-back per 100 steps
N_IMAGES = 16384


# -- the machine ---------------------------------------------------------------------------------
def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512f", "avx2")))
    except OSError:
        pass
    return []


def device_short_name(device: torch.device) -> str:
    """``cpu``, or the GPU's model in lower case: "NVIDIA H200" -> "h200", "A100-SXM4-80GB" -> "a100"."""
    if device.type != "cuda":
        return "cpu"
    name = torch.cuda.get_device_name(device).lower().replace("nvidia", "").replace("geforce", "")
    tokens = [t for t in re.split(r"[\s\-_]+", name) if t]
    with_digit = [t for t in tokens if any(c.isdigit() for c in t)]
    return re.sub(r"[^a-z0-9]", "", (with_digit or tokens or ["gpu"])[0])


def machine(device: torch.device) -> dict:
    info = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- data ----------------------------------------------------------------------------------------
def random_images(n: int) -> torch.Tensor:
    """(n, 1, 64, 64) uint8 in {0, 255}, about 10% on, like dSprites."""
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, 64, 64, generator=g) < 0.1).to(torch.uint8) * 255


class FloatImages(Dataset):
    """What reference implementations hand the DataLoader: float images in [0, 1] and a label."""

    def __init__(self, images: torch.Tensor):
        self.images = images  # (N, 1, 64, 64) float32

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], 0


def run_spec(seed: int = 0, precision: str = "auto", steps: int = 10) -> dict:
    return {
        "suite": "perf",
        "dataset": "dsprites",
        "model": MODEL,
        "model_config": {
            "architecture": ARCHITECTURE,
            "latent_dim": LATENT,
            "likelihood": "bernoulli",
            "in_channels": 1,
            "dataset_size": 737280,
            "beta": BETA,
        },
        "seed": seed,
        "training": {
            "steps": steps,
            "batch_size": BATCH,
            "optimizer": "adam",
            "learning_rate": LR,
            "precision": precision,
            "log_every": LOG_EVERY,
            "checkpoint_every": 10**9,  # no checkpoint inside the timed loop
        },
        "metrics": {},
        "dataset_source": "procedural",
        "evaluation_seed": 0,
        "representation": "mean",
    }


# -- runners: each returns run(steps) -> (seconds, images) ---------------------------------------
Runner = Callable[[int], tuple[float, int]]


def baseline_runner(device: torch.device, images_u8: torch.Tensor) -> Runner:
    """(a) DataLoader over float images, one model, eager fp32, Adam defaults, loss.item() each step."""
    loader = DataLoader(
        FloatImages(to_float(images_u8.cpu())), batch_size=BATCH, shuffle=True, drop_last=True
    )
    torch.manual_seed(0)
    model = create_model(MODEL, architecture=ARCHITECTURE, latent_dim=LATENT, beta=BETA).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    batches = iter(loader)

    def run(steps: int) -> tuple[float, int]:
        nonlocal batches
        sync(device)
        started = time.perf_counter()
        for _ in range(steps):
            try:
                x, _ = next(batches)
            except StopIteration:
                batches = iter(loader)
                x, _ = next(batches)
            x = x.to(device)
            out = model(x)
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
            out.loss.item()
        return time.perf_counter() - started, steps * BATCH

    return run


def single_runner(device: torch.device, images_u8: torch.Tensor, precision: str) -> Runner:
    """(b) train_run itself; its own clock covers the training loop, not model creation or the last save."""
    tmp = Path(tempfile.mkdtemp(prefix="vaebench-perf-"))

    def run(steps: int) -> tuple[float, int]:
        ckpt = tmp / "single.pt"
        ckpt.unlink(missing_ok=True)
        result = train_run(run_spec(0, precision, steps), images_u8, device, ckpt)
        return result.train_seconds, steps * BATCH

    return run


def packed_runner(device: torch.device, images_u8: torch.Tensor, n: int, precision: str = "auto") -> Runner:
    """(c) train_packed with n runs of different seeds; images are counted over all n runs."""
    tmp = Path(tempfile.mkdtemp(prefix="vaebench-perf-"))

    def run(steps: int) -> tuple[float, int]:
        ckpts = [tmp / f"run{i}.pt" for i in range(n)]
        for c in ckpts:
            c.unlink(missing_ok=True)
        results = train_packed([run_spec(i, precision, steps) for i in range(n)], images_u8, device, ckpts)
        return results[0].train_seconds, n * steps * BATCH

    return run


def step_runner(
    device: torch.device,
    images_u8: torch.Tensor,
    *,
    precision: str = "fp32",
    adam: str = "foreach",
    channels_last: bool = False,
    compile_mode: str | None = None,
    tf32: bool = False,
    cuda_graph: bool = False,
) -> Runner:
    """train_run's step (device-resident data drawn by index from the run's generator, noise from
    it, loss parts into a device window read back once per 100 steps), with one thing changed."""
    torch.manual_seed(0)
    model = create_model(MODEL, architecture=ARCHITECTURE, latent_dim=LATENT, beta=BETA).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    options = {"foreach": {"foreach": True}, "fused": {"fused": True}, "for-loop": {"foreach": False}}[adam]
    if cuda_graph:
        options = {"fused": True, "capturable": True}
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, **options)
    forward = torch.compile(model, mode=compile_mode) if compile_mode else model
    generator = torch.Generator(device=device).manual_seed(0)
    n_images = images_u8.shape[0]
    tf32_context = _tf32(tf32) if device.type == "cuda" else contextlib.nullcontext()
    window: _Window | None = None

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(n_images, (BATCH,), generator=generator, device=device)
        x = sample_batch(images_u8, index).contiguous(memory_format=memory_format)
        return x, torch.randn(BATCH, LATENT, generator=generator, device=device)

    def log(step: int, scalars: dict[str, torch.Tensor]) -> None:
        nonlocal window
        if window is None:
            window = _Window(list(scalars), torch.zeros(LOG_EVERY, len(scalars), device=device))
        window.values[window.filled] = torch.stack([scalars[k].detach().float() for k in window.names])
        window.filled += 1
        if window.filled == LOG_EVERY:
            _close_window(window, step + 1)

    def eager_step(step: int) -> None:
        x, noise = draw()
        with _autocast(precision, device):
            out = forward(x, step=step, noise=noise)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        log(step, out.scalars())

    step_fn = eager_step
    if cuda_graph:
        step_fn = _graphed_step(model, optimizer, draw, log, precision, device)

    counter = 0

    def run(steps: int) -> tuple[float, int]:
        nonlocal counter
        with tf32_context:
            sync(device)
            started = time.perf_counter()
            for _ in range(steps):
                step_fn(counter)
                counter += 1
            if window is not None and window.filled:
                _close_window(window, counter)  # the read-back a run ends with
            sync(device)
        return time.perf_counter() - started, steps * BATCH

    return run


@contextlib.contextmanager
def _tf32(enabled: bool):
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _graphed_step(model, optimizer, draw, log, precision, device):
    """The whole step (forward, backward, fused capturable Adam) as one CUDA graph; the batch and noise
    are drawn outside it into static buffers (PyTorch's "whole network capture" recipe)."""
    static_x, static_noise = draw()
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up outside the graph, as capture requires
            optimizer.zero_grad(set_to_none=True)
            with _autocast(precision, device):
                out = model(static_x, step=0, noise=static_noise)
            out.loss.backward()
            optimizer.step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        with _autocast(precision, device):
            out = model(static_x, step=0, noise=static_noise)
        out.loss.backward()
        optimizer.step()
        static_scalars = {k: v.detach() for k, v in out.scalars().items()}

    def step(step: int) -> None:
        x, noise = draw()
        static_x.copy_(x)
        static_noise.copy_(noise)
        graph.replay()
        log(step, static_scalars)

    return step


# -- measuring -----------------------------------------------------------------------------------
def measure(runners: dict[str, tuple[Runner, int]], repeats: int, warmup: int) -> dict[str, dict]:
    """Round-robin: every configuration's repeat r before any repeat r + 1. A configuration that
    fails (compile, CUDA graphs) is recorded with its error and dropped."""
    results: dict[str, dict] = {}
    live = dict(runners)
    for name, (run, steps) in list(live.items()):
        try:
            started = time.perf_counter()
            run(max(1, min(warmup, steps)))
            results[name] = {"steps": steps, "warmup_seconds": time.perf_counter() - started, "repeats": []}
        except Exception as exc:  # noqa: BLE001 - recorded and reported, never fatal
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=3)}
            del live[name]
        print(f"  warmed {name}", flush=True)
    for r in range(repeats):
        for name, (run, steps) in list(live.items()):
            try:
                seconds, images = run(steps)
            except Exception as exc:  # noqa: BLE001
                results[name]["error"] = f"{type(exc).__name__}: {exc}"
                del live[name]
                continue
            load = os.getloadavg()[0]
            results[name]["repeats"].append(
                {"images_per_s": images / seconds, "seconds": seconds, "loadavg_1m": load}
            )
            print(
                f"  [{r + 1}/{repeats}] {name:34s} {images / seconds:9.1f} img/s  (load {load:.2f})",
                flush=True,
            )
    for entry in results.values():
        if entry.get("repeats"):
            entry["images_per_s"] = statistics.median(x["images_per_s"] for x in entry["repeats"])
            entry["loadavg_1m_median"] = statistics.median(x["loadavg_1m"] for x in entry["repeats"])
    return results


def time_evaluation(device: torch.device, settings: str) -> dict:
    """Every registered metric for one (briefly trained) model through ``evaluate_run``, and, apart,
    the time to encode as many dSprites images as the evaluation encoded (it encodes lazily, inside
    the metrics' own time, so encoding is timed again here on its own)."""
    try:
        import metrics
        from benchmarks.datasets import load_dataset
        from benchmarks.runner.evaluate import evaluate_run
        from benchmarks.runner.suite import RunSpec
    except ImportError as exc:
        return {"skipped": f"metrics package not importable ({exc})"}
    if not hasattr(metrics, "list_metrics"):
        return {"skipped": "metrics.list_metrics does not exist yet"}
    started = time.perf_counter()
    dataset = load_dataset("dsprites", "procedural")
    prepare = time.perf_counter() - started
    names = metrics.list_metrics()
    spec_dict = run_spec(0, "auto", 20)
    spec_dict["metrics"] = {n: metrics.get_metric(n).settings(settings) for n in names}
    subset = torch.arange(0, len(dataset), 97).numpy()
    images = torch.from_numpy(dataset.images_at(subset)).to(device)
    with tempfile.TemporaryDirectory() as tmp:
        model = train_run(spec_dict, images, device, Path(tmp) / "eval.pt").model
    started = time.perf_counter()
    evaluation = evaluate_run(RunSpec(**spec_dict), model, dataset, device)
    total = time.perf_counter() - started
    seconds = dict(evaluation.seconds)
    points = int(seconds.pop("points_encoded", 0))
    encode = time_encoding(model, dataset, device, points) if points else None
    return {
        "settings": settings,
        "metrics": names,
        "dataset_prepare_seconds": prepare,
        "metric_seconds": seconds,  # per metric, including the encoding it triggered first
        "points_encoded": points,
        "encode_seconds": encode,  # the same number of points encoded on their own
        "total_seconds": total,  # evaluate_run: metrics, MI matrix, traversals
        "loadavg_1m": os.getloadavg()[0],
    }


@torch.no_grad()
def time_encoding(model, dataset, device: torch.device, n: int, batch_size: int = 1024) -> float:
    """Seconds to read, convert and encode n dSprites images in batches, as the evaluation does."""
    indices = (
        torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:n].sort().values.numpy()
    )
    model = model.to(device).eval()
    sync(device)
    started = time.perf_counter()
    for start in range(0, n, batch_size):
        x = to_float(torch.from_numpy(dataset.images_at(indices[start : start + batch_size])).to(device))
        mean, logvar = model.encode(x)
        mean.double().cpu(), logvar.double().cpu()
    sync(device)
    return time.perf_counter() - started


# -- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--quick", action="store_true", help="few steps and repeats, no compile, no evaluation"
    )
    parser.add_argument("--steps", type=int, help="timed steps per repeat of a single-model configuration")
    parser.add_argument("--repeats", type=int, help="repeats per configuration (median reported)")
    parser.add_argument("--packs", default="1,6,36", help="pack sizes for (c)")
    parser.add_argument(
        "--compile", choices=("auto", "on", "off"), default="auto", help="auto: off on CPU --quick"
    )
    parser.add_argument(
        "--evaluation", choices=("auto", "on", "off"), default="auto", help="auto: off with --quick"
    )
    parser.add_argument("--eval-settings", choices=("fast", "study"), default="fast")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "perf")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from benchmarks.runner.train import resolve_device

    device = resolve_device(args.device)
    steps = args.steps or (8 if args.quick else 40)
    repeats = args.repeats or (2 if args.quick else 5)
    warmup = 3 if args.quick else 10
    packs = [int(n) for n in args.packs.split(",") if n]
    use_compile = args.compile == "on" or (
        args.compile == "auto" and not (args.quick and device.type == "cpu")
    )
    evaluation = args.evaluation == "on" or (args.evaluation == "auto" and not args.quick)
    auto = resolve_precision("auto", device)
    other = "bf16" if auto == "fp32" else "fp32"
    info = machine(device)
    print(
        f"device {device} ({info.get('gpu', info['cpu'])}), torch {torch.__version__}, "
        f"{info['torch_threads']} threads"
    )

    images_u8 = random_images(N_IMAGES).to(device)
    runners: dict[str, tuple[Runner, int]] = {
        "baseline": (baseline_runner(device, images_u8), steps),
        "single": (single_runner(device, images_u8, "auto"), steps),
        f"single:{other}": (single_runner(device, images_u8, other), steps),
        "step:fp32 foreach-adam": (step_runner(device, images_u8, adam="foreach"), steps),
        "step:fp32 fused-adam": (step_runner(device, images_u8, adam="fused"), steps),
        "step:fp32 for-loop-adam": (step_runner(device, images_u8, adam="for-loop"), steps),
        "step:bf16 foreach-adam": (step_runner(device, images_u8, precision="bf16"), steps),
        "step:bf16 fused-adam": (step_runner(device, images_u8, precision="bf16", adam="fused"), steps),
        "step:fp32 channels_last": (step_runner(device, images_u8, channels_last=True), steps),
        "step:bf16 channels_last": (
            step_runner(device, images_u8, precision="bf16", channels_last=True),
            steps,
        ),
    }
    if device.type == "cuda":
        runners["step:tf32 fused-adam"] = (step_runner(device, images_u8, adam="fused", tf32=True), steps)
        runners["step:bf16 cuda-graph"] = (
            step_runner(device, images_u8, precision="bf16", cuda_graph=True),
            steps,
        )
    if use_compile:
        for precision in ("fp32", "bf16"):
            runners[f"step:{precision} compile"] = (
                step_runner(device, images_u8, precision=precision, compile_mode="default"),
                steps,
            )
        if device.type == "cuda":
            runners["step:bf16 compile reduce-overhead"] = (
                step_runner(device, images_u8, precision="bf16", compile_mode="reduce-overhead"),
                steps,
            )
    for n in packs:
        # A pack step costs about n single steps on a CPU; fewer steps keep the run short there.
        pack_steps = steps if device.type == "cuda" else max(2, steps // max(1, n // 2))
        runners[f"packed:{n}"] = (packed_runner(device, images_u8, n), pack_steps)

    print(f"{len(runners)} configurations, {repeats} repeats, {steps} steps each (packs fewer on CPU)")
    results = measure(runners, repeats, warmup)
    base = results["baseline"].get("images_per_s")
    for entry in results.values():
        if base and entry.get("images_per_s"):
            entry["vs_baseline"] = entry["images_per_s"] / base
    packed = {n: results[f"packed:{n}"].get("images_per_s") for n in packs}
    report = {
        "benchmark": "train_throughput",
        "device": device_short_name(device),
        "machine": info,
        "settings": {
            "model": MODEL,
            "architecture": ARCHITECTURE,
            "latent_dim": LATENT,
            "batch_size": BATCH,
            "learning_rate": LR,
            "optimizer": "adam",
            "auto_precision": auto,
            "steps": steps,
            "repeats": repeats,
            "warmup_steps": warmup,
            "packs": packs,
            "quick": args.quick,
        },
        "configurations": results,
        "single_vs_baseline": (results["single"].get("images_per_s") or float("nan"))
        / (base or float("nan")),
        "packed_aggregate_images_per_s": max((v for v in packed.values() if v), default=None),
        "packed_best_n": max((n for n in packs if packed[n]), key=lambda n: packed[n], default=None),
    }
    report["machine"]["loadavg_end"] = os.getloadavg()
    if evaluation:
        print("timing evaluation ...", flush=True)
        try:
            report["evaluation"] = time_evaluation(device, args.eval_settings)
        except Exception as exc:  # noqa: BLE001 - the training numbers are still worth writing
            report["evaluation"] = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        report["evaluation"] = {"skipped": "--quick (or --evaluation off)"}
    write(report, args.out)
    return report


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    name = f"train_{report['device']}"
    (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / f"{name}.md").write_text(markdown(report))
    print(f"wrote {out / name}.json and .md")
    print(
        f"single vs baseline: {report['single_vs_baseline']:.2f}x; "
        f"packed aggregate {report['packed_aggregate_images_per_s']}"
    )


def markdown(report: dict) -> str:
    m, s, conf = report["machine"], report["settings"], report["configurations"]
    base = conf["baseline"].get("images_per_s")
    where = m.get("gpu") or m["cpu"]
    lines = [
        f"# Training throughput on {report['device']} (benchmarks/perf/train_throughput.py)",
        "",
        f"Machine: {where}; {m['cores']} cores, {m['torch_threads']} torch threads; CPU flags "
        f"{', '.join(m['cpu_flags']) or 'n/a'}; torch {m['torch']}, Python {m['python']}. "
        f"Load average {'/'.join(f'{x:.2f}' for x in m['loadavg_start'])} at the start, "
        f"{'/'.join(f'{x:.2f}' for x in m['loadavg_end'])} at the end.",
        "",
        f"Setup: {s['model']} on the {s['architecture']} architecture, {s['latent_dim']} latents, batch "
        f"{s['batch_size']}, Adam lr {s['learning_rate']}; {s['steps']} timed steps x {s['repeats']} repeats "
        f"per configuration after {s['warmup_steps']} warm-up steps, round-robin; median reported. "
        f"`auto` precision on this device: **{s['auto_precision']}**.",
        "",
        "| configuration | images/s (median) | x baseline | repeats (images/s) | load (1 min) at repeats |",
        "|---|---:|---:|---|---|",
    ]
    for name, e in conf.items():
        if "error" in e and not e.get("images_per_s"):
            lines.append(f"| {name} | failed | | {e['error'][:120]} | |")
            continue
        reps = ", ".join(f"{r['images_per_s']:.0f}" for r in e.get("repeats", []))
        loads = ", ".join(f"{r['loadavg_1m']:.1f}" for r in e.get("repeats", []))
        ratio = f"{e['images_per_s'] / base:.2f}" if base else ""
        lines.append(f"| {name} | {e['images_per_s']:.0f} | {ratio} | {reps} | {loads} |")
    lines += [
        "",
        f"**single vs baseline: {report['single_vs_baseline']:.2f}x**; best packed aggregate: "
        f"{report['packed_aggregate_images_per_s'] or float('nan'):.0f} images/s "
        f"(N = {report['packed_best_n']}).",
        "",
    ]
    ev = report.get("evaluation", {})
    if "metric_seconds" in ev:
        lines += [
            f"## Evaluation of one model ({ev['settings']} settings, {len(ev['metrics'])} metrics, load "
            f"{ev['loadavg_1m']:.1f})",
            "",
            "| part | seconds |",
            "|---|---:|",
            f"| encoding the {ev['points_encoded']} images the metrics asked for (timed on its own) | "
            f"{ev['encode_seconds'] or 0:.2f} |",
        ]
        lines += [
            f"| metric {k} (incl. its first-use encoding) | {v:.2f} |"
            for k, v in ev["metric_seconds"].items()
        ]
        lines += [f"| **evaluate_run total** (metrics, MI matrix, traversals) | {ev['total_seconds']:.2f} |"]
        steps_per_s = (conf["single"].get("images_per_s") or 0) / s["batch_size"]
        if steps_per_s:
            lines += [
                "",
                f"At the single path's {steps_per_s:.1f} steps/s, the evaluation costs as much as "
                f"{ev['total_seconds'] * steps_per_s:.0f} training steps.",
            ]
        lines.append("")
    else:
        lines += [f"Evaluation: {ev.get('skipped') or ev.get('error')}", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
