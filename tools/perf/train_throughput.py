"""Training throughput on one device: a reference-style baseline, the runner's loop alone and packed.

    python -m tools.perf.train_throughput [--device auto] [--quick] [--out results/perf]

Model: beta_vae (beta 4) on the locatello architecture (Locatello et al. 2019,
about 0.7 M parameters), 10 latents, batch 64, Adam at lr 1e-4, on random
dSprites-like binary images (64x64, about 10% of pixels on; throughput does
not depend on the pixels). Configurations, all measured in one run on one device:

(a) ``baseline``: the way reference implementations train (disentangling-vae,
    disentanglement-pytorch): a ``torch.utils.data.Dataset`` of float images, a
    shuffling ``DataLoader`` (batches collated on the host and copied to the
    device), one model, eager fp32, ``torch.optim.Adam`` with its defaults, and
    ``loss.item()`` every step. It is the comparison point, not the runner's loop.
(b) ``single``: ``benchmarks.runner.train.train_run`` with a ``RunSpec``, on
    ``TrainingImages`` backed as the runner backs them on this device
    (``GroundTruthDataset.training_images``: read by index from a bit-packed
    cache file on the CPU, one uint8 upload on CUDA), with ``precision="auto"``
    (the runner's default for the device), and ``single:<other precision>``.
    ``step:*``: the runner's own step (``train.Member`` built from the spec:
    its model, optimisers and generator; ``train.SingleNetwork.step``, i.e.
    ``VAE.forward``/``assemble_loss``; ``Member.log``'s device window) with one
    thing changed, to choose defaults: Adam foreach/fused/for-loop, bf16
    autocast, channels_last, ``torch.compile``; on CUDA also TF32 and a CUDA
    graph of the whole step. None of them is what the runner runs by default.
(c) ``packed:N``: ``benchmarks.runner.train.train_runs`` with N runs of
    different seeds (N = 1 is a pack of one, i.e. the ``single`` path);
    images/s is the aggregate over the N runs.

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
import re
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.datasets import TrainingImages, to_float
from benchmarks.datasets.cache import CacheReader
from benchmarks.runner import provenance
from benchmarks.runner.settings import resolve_precision
from benchmarks.runner.spec import RunSpec, RunTraining
from benchmarks.runner.train import (
    Member,
    SingleNetwork,
    draw_inputs,
    train_run,
    train_runs,
)
from vae_zoo import create_model

ROOT = Path(__file__).resolve().parents[2]

MODEL, BETA, ARCHITECTURE, LATENT, BATCH, LR = "beta_vae", 4.0, "locatello", 10, 64, 1e-4
LOG_EVERY = 100  # the runner's default window: one host read-back per 100 steps
N_IMAGES = 16384
IMAGE_BACKINGS = ("auto", "file", "tensor")
BACKING_WORDS = {
    "file": "read by index from a bit-packed cache file",
    "tensor": "one uint8 tensor on the device",
}


# -- the machine ---------------------------------------------------------------------------------
def cpu_flags() -> list[str]:
    """The CPU's vector and matrix extensions that bf16 speed depends on (avx2, avx512, amx)."""
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
    """The device, CPU, threads and library versions the numbers were taken with."""
    return {**provenance.machine(device), "cpu_flags": cpu_flags(), "loadavg_start": os.getloadavg()}


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that a timer reads the work done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- data ----------------------------------------------------------------------------------------
def random_images(n: int) -> torch.Tensor:
    """(n, 1, 64, 64) uint8 in {0, 255}, about 10% on, like dSprites."""
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, 64, 64, generator=g) < 0.1).to(torch.uint8) * 255


def training_images(images_u8: torch.Tensor, device: torch.device, backing: str = "auto") -> TrainingImages:
    """``TrainingImages`` as ``GroundTruthDataset.training_images(device)`` backs them.

    ``file``: a bit-packed cache file read by index (``storage.CacheReader``; the runner's
    CPU path); ``tensor``: one uint8 tensor on the device (its CUDA path); ``auto``: the
    runner's choice for ``device``.
    """
    if backing == "auto":
        backing = "file" if device.type == "cpu" else "tensor"
    if backing == "tensor":
        return TrainingImages(images_u8.to(device))
    if backing != "file":
        raise ValueError(f"image backing must be one of {', '.join(IMAGE_BACKINGS)}; got {backing!r}")
    u8 = images_u8.cpu().numpy()
    if not np.isin(u8, (0, 255)).all():
        raise ValueError("the file backing is bit-packed: images must be 0 or 255")
    path = Path(tempfile.mkdtemp(prefix="vaebench-perf-")) / "images.npy"
    np.save(path, np.packbits(u8.reshape(len(u8), -1) > 0, axis=1))  # the cache's packed layout
    return TrainingImages(reader=CacheReader(path, u8.shape, packed=True), device=device)


class FloatImages(Dataset):
    """What reference implementations hand the DataLoader: float images in [0, 1] and a label."""

    def __init__(self, images: torch.Tensor):
        self.images = images  # (N, 1, 64, 64) float32

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], 0


def run_spec(
    seed: int = 0,
    precision: str = "auto",
    steps: int = 10,
    *,
    model: str = MODEL,
    batch_size: int = BATCH,
    log_every: int = LOG_EVERY,
    checkpoint_every: int = 10**9,  # no checkpoint inside the timed loop
    **config,
) -> RunSpec:
    """The benchmark's run as the runner gets it from a suite (``config`` overrides the model's)."""
    model_config = {
        "architecture": ARCHITECTURE,
        "latent_dim": LATENT,
        "likelihood": "bernoulli",
        "in_channels": 1,
        "dataset_size": 737280,
        **({"beta": BETA} if model == MODEL else {}),
        **config,
    }
    return RunSpec(
        suite="perf",
        dataset="dsprites",
        model=model,
        model_config=model_config,
        seed=seed,
        training=RunTraining(
            steps=steps,
            batch_size=batch_size,
            optimizer="adam",
            learning_rate=LR,
            precision=precision,
            log_every=log_every,
            checkpoint_every=checkpoint_every,
        ),
        metrics={},
        dataset_source="procedural",
    )


def with_steps(spec: RunSpec, steps: int) -> RunSpec:
    """``spec`` with its number of training steps replaced."""
    return spec.replace(training=RunTraining(**{**spec.training.to_dict(), "steps": steps}))


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


def single_runner(device: torch.device, images: TrainingImages, precision: str) -> Runner:
    """(b) ``train_run`` itself; its own clock covers the loop, not building the model."""

    def run(steps: int) -> tuple[float, int]:
        result = train_run(run_spec(0, precision, steps), images, device, None)
        return result.train_seconds, steps * BATCH

    return run


def packed_runner(device: torch.device, images: TrainingImages, n: int, precision: str = "auto") -> Runner:
    """(c) ``train_runs`` with n runs of different seeds; images are counted over all n runs."""

    def run(steps: int) -> tuple[float, int]:
        results = train_runs([run_spec(i, precision, steps) for i in range(n)], images, device, [None] * n)
        return results[0].train_seconds, n * steps * BATCH

    return run


class Stepper:
    """The runner's step for one run with one thing changed (``step:*`` configurations).

    Built from the runner's own pieces: ``train.Member.build`` (the spec's model, initialised
    from its seed; its optimisers; its generator), ``train.SingleNetwork.step`` (``VAE.forward``,
    hence ``assemble_loss``; backward; the optimiser step) and ``Member.log`` (the device window,
    read back once per ``log_every`` and at the end). The draws are the loop's, in its order:
    batch indices, then reparameterisation noise, both from the run's generator. With nothing
    changed it takes exactly the steps of ``train_run`` (tests/gpu/test_gpu.py checks it).

    Args:
        adam: None (the runner's: fused on CUDA, foreach on the CPU), "foreach", "fused", "for-loop".
        channels_last: model and batches in channels_last memory format.
        compile_mode: ``torch.compile`` the model (``nn.Module.compile``) in this mode.
        tf32: allow TF32 matmuls and convolutions (CUDA).
        cuda_graph: capture the whole step (forward, backward, fused capturable Adam) as one CUDA
            graph; the batch and noise are drawn outside it, from the run's generator, into static
            buffers (PyTorch's "whole network capture" recipe). The warm-up the capture needs runs
            on other inputs and its effect on the weights and Adam state is undone, so the graph
            starts from the spec's initial state. The graph is recorded at step 0: only for
            variants whose loss does not depend on the step (vae, beta_vae, ...). bf16 autocast
            runs with its weight-cast cache off, as CUDA graphs require.
    """

    def __init__(
        self,
        spec: RunSpec,
        images: TrainingImages,
        device: torch.device,
        *,
        adam: str | None = None,
        channels_last: bool = False,
        compile_mode: str | None = None,
        tf32: bool = False,
        cuda_graph: bool = False,
    ):
        if cuda_graph and device.type != "cuda":
            raise ValueError("cuda_graph needs a CUDA device")
        self.spec, self.images, self.device = spec, images, device
        self.precision = resolve_precision(spec.training.precision, device)
        self.member = member = Member.build(0, spec, device, None)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            member.model.to(memory_format=torch.channels_last)
        if adam is not None or cuda_graph:
            options = {"foreach": {"foreach": True}, "fused": {"fused": True}, "for-loop": {"foreach": False}}
            chosen = {"fused": True, "capturable": True} if cuda_graph else options[adam]
            params = [p for group in member.optimizer.param_groups for p in group["params"]]
            member.optimizer = torch.optim.Adam(params, lr=spec.training.learning_rate, **chosen)
        if compile_mode:
            member.model.compile(mode=compile_mode)
        self.network = SingleNetwork([member], device)
        self.tf32 = tf32
        self.counter = 0  # steps taken
        self.total = 0  # the step the current ``run`` ends at (its window is read back there)
        self.graphed = cuda_graph
        self._graph = self._capture() if cuda_graph else None

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The loop's draws for one run: (1, B, C, H, W) batch, (1, B, D) noise."""
        x, noise, _ = draw_inputs([self.member], self.images, self.spec.training.batch_size, self.device)
        return x[0].contiguous(memory_format=self.memory_format)[None], noise

    def _network_step(self, x, noise, step):
        if not self.graphed:
            return self.network.step(x, noise, step, self.precision, self.device)
        # CUDA graphs: autocast's cast cache must be off; the runner's autocast keeps it on.
        cast = (
            torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)
            if self.precision == "bf16"
            else contextlib.nullcontext()
        )
        with cast:
            return self.network.step(x, noise, step, "fp32", self.device)

    def _capture(self):
        m, t = self.member, self.spec.training
        index = torch.arange(t.batch_size, device=self.device) % self.images.num_images
        static_x = self.images.batch(index)[None].clone()  # not from the run's generator
        static_noise = torch.zeros(1, t.batch_size, m.model.config.latent_dim, device=self.device)
        initial = [p.detach().clone() for p in m.model.parameters()]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up outside the graph, as capture requires
                self._network_step(static_x, static_noise, 0)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        m.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            (scalars,) = self._network_step(static_x, static_noise, 0)
            static_scalars = {k: v.detach() for k, v in scalars.items()}
        # Undo the warm-up: the spec's initial weights, a fresh Adam (zero moments, step 0), in place
        # (the graph holds these tensors' addresses).
        with torch.no_grad():
            for p, p0 in zip(m.model.parameters(), initial):
                p.copy_(p0)
            for state in m.optimizer.state.values():
                for value in state.values():
                    if torch.is_tensor(value):
                        value.zero_()
        return graph, static_x, static_noise, static_scalars

    def step(self) -> None:
        """One training step: draw the batch, then the eager step or the captured CUDA graph."""
        step = self.counter
        x, noise = self.draw()
        if self._graph is None:
            (scalars,) = self._network_step(x, noise, step)
        else:
            graph, static_x, static_noise, scalars = self._graph
            static_x.copy_(x)
            static_noise.copy_(noise)
            graph.replay()
        self.member.log(scalars, step, max(self.total, step + 1), self.device)
        self.counter += 1

    def run(self, steps: int) -> float:
        """``steps`` more steps; seconds, the last step's window read back included (as a run ends)."""
        self.total = self.counter + steps
        with _tf32(self.tf32) if self.device.type == "cuda" else contextlib.nullcontext():
            sync(self.device)
            started = time.perf_counter()
            for _ in range(steps):
                self.step()
            sync(self.device)
        return time.perf_counter() - started

    @property
    def curve(self) -> dict[str, list[float]]:
        """The logged training curve of the one run."""
        return self.member.window.curve if self.member.window is not None else {}


def step_runner(device: torch.device, images: TrainingImages, *, precision: str = "fp32", **change) -> Runner:
    """A ``Stepper`` of the benchmark's run as a runner."""
    stepper = Stepper(run_spec(0, precision, 10**9), images, device, **change)

    def run(steps: int) -> tuple[float, int]:
        return stepper.run(steps), steps * BATCH

    return run


@contextlib.contextmanager
def _tf32(enabled: bool):
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# -- measuring -----------------------------------------------------------------------------------
def measure(runners: dict[str, tuple[Runner, int]], repeats: int, warmup: int) -> dict[str, dict]:
    """Time the runners round-robin: every configuration's repeat r before any repeat r + 1.

    A configuration that fails (compile, CUDA graphs) is recorded with its error and dropped.
    """
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
    """Time every per-run metric for one (briefly trained) model through ``evaluate_run``.

    And, apart, the time to encode as many dSprites images as the evaluation encoded (it encodes
    lazily, inside the metrics' own time, so encoding is timed again here on its own).
    """
    try:
        import metrics
        from benchmarks.datasets import load_dataset
        from benchmarks.runner.evaluate import evaluate_run
    except ImportError as exc:
        return {"skipped": f"metrics package not importable ({exc})"}
    if not hasattr(metrics, "list_metrics"):
        return {"skipped": "metrics.list_metrics does not exist yet"}
    started = time.perf_counter()
    dataset = load_dataset("dsprites", "procedural")
    prepare = time.perf_counter() - started
    from benchmarks.runner.suite import per_run_metrics

    names = per_run_metrics()  # UDR scores groups of runs, through `vaebench udr`
    spec = run_spec(0, "auto", 20).replace(
        metrics={n: metrics.get_metric(n).settings(settings) for n in names}
    )
    model = train_run(spec, dataset.training_images(device), device, None).model
    started = time.perf_counter()
    evaluation = evaluate_run(spec, model, dataset, device)
    total = time.perf_counter() - started
    seconds = dict(evaluation.seconds)
    points = int(evaluation.counts.get("points_encoded", 0))
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


# -- one packed step, profiled -------------------------------------------------------------------
def profile_packed_step(device: torch.device, images: TrainingImages, n: int, top: int = 25) -> dict:
    """``torch.profiler`` over exactly one step of ``train_runs`` with n runs.

    The 4th step (one to skip, two to warm up); ops and kernels ranked by their own device time
    (CPU time on the CPU).
    """
    from torch.profiler import ProfilerActivity, profile, schedule

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    specs = [run_spec(i, "auto", 4) for i in range(n)]
    with profile(activities=activities, schedule=schedule(wait=1, warmup=2, active=1)) as prof:

        def on_progress(index: int, done: int, total: int) -> None:
            if index == 0:  # once per step, after the step and its log row
                sync(device)
                prof.step()

        started = time.perf_counter()
        train_runs(specs, images, device, [None] * n, on_progress=on_progress)
        seconds = time.perf_counter() - started
    events = prof.key_averages()
    on_device = device.type == "cuda"

    def own_time(e) -> float:  # microseconds
        if on_device:
            return float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)))
        return float(e.self_cpu_time_total)

    ranked = sorted(events, key=own_time, reverse=True)
    total = sum(own_time(e) for e in events) or float("nan")
    rows = [
        {
            "name": e.key,
            "self_us": own_time(e),
            "share": own_time(e) / total,
            "calls": e.count,
            "cpu_total_us": float(e.cpu_time_total),
        }
        for e in ranked[:top]
        if own_time(e) > 0
    ]
    sort_by = "self_device_time_total" if on_device else "self_cpu_time_total"
    try:
        table = events.table(sort_by=sort_by, row_limit=top)
    except (AttributeError, KeyError, ValueError):  # older torch: the CUDA name
        table = events.table(sort_by="self_cuda_time_total" if on_device else sort_by, row_limit=top)
    return {
        "pack": n,
        "batch_size": BATCH,
        "time_basis": "self device time" if on_device else "self CPU time",
        "total_self_us": total,
        "train_runs_seconds_4_steps": seconds,
        "top": rows,
        "table": table,
    }


# -- main ----------------------------------------------------------------------------------------
def selected(name: str, wanted: list[str] | None) -> bool:
    """``--configs``: a configuration is selected by its name or by the part before its colon."""
    return wanted is None or name in wanted or name.split(":")[0] in wanted


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tools.perf.train_throughput``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--quick", action="store_true", help="few steps and repeats, no compile, no evaluation"
    )
    parser.add_argument("--steps", type=int, help="timed steps per repeat of a single-model configuration")
    parser.add_argument("--repeats", type=int, help="repeats per configuration (median reported)")
    parser.add_argument("--warmup", type=int, help="warm-up steps per configuration (default 10; 3 --quick)")
    parser.add_argument("--packs", default="1,6,36", help="pack sizes for (c)")
    parser.add_argument(
        "--configs",
        help="comma-separated configurations to measure, by name or by the part before the colon "
        "(e.g. baseline,single,packed); default: all",
    )
    parser.add_argument(
        "--images",
        choices=IMAGE_BACKINGS,
        default="auto",
        help="how TrainingImages are backed; auto: as the runner backs them on the device",
    )
    parser.add_argument(
        "--compile", choices=("auto", "on", "off"), default="auto", help="auto: off on CPU --quick"
    )
    parser.add_argument(
        "--evaluation", choices=("auto", "on", "off"), default="auto", help="auto: off with --quick"
    )
    parser.add_argument("--eval-settings", choices=("fast", "study"), default="fast")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument(
        "--profile-pack",
        type=int,
        metavar="N",
        help="instead of measuring: profile one step of a pack of N runs, write profile_<device>.json/.txt",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "perf")
    return parser


def profile_main(args: argparse.Namespace, device: torch.device) -> dict:
    """``--profile-pack N``: profile one packed step and write ``profile_<device>.json`` and ``.txt``."""
    images = training_images(random_images(N_IMAGES), device, args.images)
    profiled = profile_packed_step(device, images, args.profile_pack)
    profiled.update(device=device_short_name(device), machine=machine(device))
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"profile_{profiled['device']}"
    (args.out / f"{name}.txt").write_text(profiled["table"] + "\n")
    (args.out / f"{name}.json").write_text(json.dumps(profiled, indent=2, default=str) + "\n")
    print(profiled["table"])
    print(f"wrote {args.out / name}.json and .txt")
    return profiled


def configurations(
    device: torch.device,
    images: TrainingImages,
    images_u8: torch.Tensor,
    steps: int,
    packs: list[int],
    use_compile: bool,
    other: str,
) -> dict[str, tuple[Callable[[], Runner], int]]:
    """Every configuration this device can run: its name -> (a factory of its runner, timed steps)."""
    factories: dict[str, tuple[Callable[[], Runner], int]] = {
        "baseline": (lambda: baseline_runner(device, images_u8), steps),
        "single": (lambda: single_runner(device, images, "auto"), steps),
        f"single:{other}": (lambda: single_runner(device, images, other), steps),
    }

    def add_step(name: str, **change) -> None:
        factories[f"step:{name}"] = (lambda: step_runner(device, images, **change), steps)

    add_step("fp32 foreach-adam", adam="foreach")
    add_step("fp32 fused-adam", adam="fused")
    add_step("fp32 for-loop-adam", adam="for-loop")
    add_step("bf16 foreach-adam", precision="bf16", adam="foreach")
    add_step("bf16 fused-adam", precision="bf16", adam="fused")
    add_step("fp32 channels_last", channels_last=True)
    add_step("bf16 channels_last", precision="bf16", channels_last=True)
    if device.type == "cuda":
        add_step("tf32 fused-adam", adam="fused", tf32=True)
        add_step("fp32 cuda-graph", cuda_graph=True)
        add_step("bf16 cuda-graph", precision="bf16", cuda_graph=True)
    if use_compile:
        add_step("fp32 compile", compile_mode="default")
        add_step("bf16 compile", precision="bf16", compile_mode="default")
        if device.type == "cuda":
            add_step("bf16 compile reduce-overhead", precision="bf16", compile_mode="reduce-overhead")
    for n in packs:
        # A pack step costs about n single steps on a CPU; fewer steps keep the run short there.
        pack_steps = steps if device.type == "cuda" else max(2, steps // max(1, n // 2))
        factories[f"packed:{n}"] = (lambda n=n: packed_runner(device, images, n), pack_steps)
    return factories


def main(argv: list[str] | None = None) -> dict:
    """Measure the configurations (or profile one packed step) and write the report under ``--out``."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from benchmarks.runner.train import resolve_device

    device = resolve_device(args.device)
    if args.profile_pack:
        return profile_main(args, device)
    steps = args.steps or (8 if args.quick else 40)
    repeats = args.repeats or (2 if args.quick else 5)
    warmup = args.warmup if args.warmup is not None else (3 if args.quick else 10)
    packs = [int(n) for n in args.packs.split(",") if n]
    wanted = [c.strip() for c in args.configs.split(",") if c.strip()] if args.configs else None
    if wanted is not None and "baseline" not in wanted:
        wanted.append("baseline")  # every ratio is to it
    use_compile = args.compile == "on" or (
        args.compile == "auto" and not (args.quick and device.type == "cpu")
    )
    evaluation = args.evaluation == "on" or (args.evaluation == "auto" and not args.quick)
    auto = resolve_precision("auto", device)
    other = "bf16" if auto == "fp32" else "fp32"
    info = machine(device)
    print(
        f"device {device} ({info.get('gpu', info['cpu_model'])}), torch {torch.__version__}, "
        f"{info['torch_threads']} threads"
    )

    images_u8 = random_images(N_IMAGES)
    images = training_images(images_u8, device, args.images)
    print(f"training images: {'file (read by index)' if images.reader is not None else 'tensor'}")
    images_u8 = images_u8.to(device)
    factories = configurations(device, images, images_u8, steps, packs, use_compile, other)
    runners = {name: (make(), k) for name, (make, k) in factories.items() if selected(name, wanted)}

    print(f"{len(runners)} configurations, {repeats} repeats, {steps} steps each (packs fewer on CPU)")
    results = measure(runners, repeats, warmup)
    base = results["baseline"].get("images_per_s")
    packs = [n for n in packs if f"packed:{n}" in results]
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
            "images": "file" if images.reader is not None else "tensor",
            "quick": args.quick,
        },
        "configurations": results,
        "single_vs_baseline": (results.get("single", {}).get("images_per_s") or float("nan"))
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
    """Write the report as ``train_<device>.json`` and ``.md`` under ``out``."""
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
    """The report as Markdown."""
    m, s, conf = report["machine"], report["settings"], report["configurations"]
    base = conf["baseline"].get("images_per_s")
    where = m.get("gpu") or m["cpu_model"]
    lines = [
        f"# Training throughput on {report['device']} (python -m tools.perf.train_throughput)",
        "",
        f"Machine: {where}; {m['cpu_count']} cores, {m['torch_threads']} torch threads; CPU flags "
        f"{', '.join(m['cpu_flags']) or 'n/a'}; torch {m['torch']}, Python {m['python']}. "
        f"Load average {'/'.join(f'{x:.2f}' for x in m['loadavg_start'])} at the start, "
        f"{'/'.join(f'{x:.2f}' for x in m['loadavg_end'])} at the end.",
        "",
        f"Setup: {s['model']} on the {s['architecture']} architecture, {s['latent_dim']} latents, batch "
        f"{s['batch_size']}, Adam lr {s['learning_rate']}; {s['steps']} timed steps x {s['repeats']} repeats "
        f"per configuration after {s['warmup_steps']} warm-up steps, round-robin; median reported. "
        f"`auto` precision on this device: **{s['auto_precision']}**. Training images: "
        f"{BACKING_WORDS[s.get('images', 'tensor')]}, as the runner backs them. "
        "`single` and `packed:N` are `train_run`/`train_runs` themselves (`packed:1` is a pack of one, "
        "the `single` path); `step:*` are the runner's step with one thing changed.",
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
        steps_per_s = (conf.get("single", {}).get("images_per_s") or 0) / s["batch_size"]
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
