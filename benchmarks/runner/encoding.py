"""How the runner runs an encoder on images for scoring: the passes, and each pass, as the records need them.

A record's codes were made by forward passes over chunks of RECORDED_BATCH images. On a CPU the
runner gets the same codes, bit for bit, faster, in four ways, each checked where it is not exact:

* passes of FORWARD_BATCH images (``forward_batches``): oneDNN computes each image alike in any
  batch of 256 or more (tests/runner/test_evaluation_options.py checks it on the machine it runs on);
* the encoder's ReLUs in place and a 1-channel first convolution fused with its ReLU
  (``encode_for_scoring``; ``first_conv`` checks the fused layer against PyTorch per input shape);
* the encoder's leading convolutions and ReLUs on oneDNN's blocked tensors, without the reorders
  to and from NCHW around each layer (``blocked_convs``, checked against the NCHW layers per
  input shape and threads; where it is used the first convolution is oneDNN's own): on the
  AMD EPYC of results/perf/eval_cost_cpu.md's encoding table, the runner's 14,108 images/s
  against 10,139 without it (1.39x; 1.29x in the run before it, 1.25x in a paired
  whole-process probe of 65,536 dSprites images, 5 pairs), the same codes;
* each pass as sub-passes of SIDE_BY_SIDE_BATCH images side by side, one thread each
  (``encode_passes``): oneDNN's convolutions on a few hundred images scale poorly across threads,
  and a small pass keeps its activations in cache. On the 2-core AMD EPYC of
  results/perf/eval_cost_cpu.md's encoding table (NCHW layers, the first convolution fused):
  10,139 images/s against 4,932 for the same passes whole on two threads (2.1x), the same codes.
  An image's codes can depend on the threads and the batch computing it (there, one thread on 8
  images differed from two threads on 256; on 16 to 64 it did not), so each sub-pass size is
  compared bit for bit with its images' codes in a whole pass on its first use (``PassCheck``);
  a size that differs runs whole on all threads.
  Passes are cut evenly (sub-passes of 32 to 36 images), so an encoding checks at most five sizes:
  cut as 32s and a remainder (32 to 63), the β-VAE score's 313 calls for its 10,000 training points
  at the study's settings checked all 32 sizes, 6.4 s of their 73 s in checks, against 1.4 s cut
  evenly (an ad-hoc probe on the AMD EPYC).

Where a faster setting does change the last bits (channels_last, another pass size), it is a named
option (``evaluate.EvaluationOptions``), never a default.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from benchmarks.runner.blocked_convs import BlockedConvs
from benchmarks.runner.first_conv import FirstConvCheck, first_conv_relu, fusable
from vae_zoo import VAE
from vaebench.memory import release_freed_memory

__all__ = [
    "FORWARD_BATCH",
    "RECORDED_BATCH",
    "TRIM_AFTER_IMAGES",
    "PassCheck",
    "ScoringPasses",
    "encode_for_scoring",
    "SIDE_BY_SIDE_BATCH",
    "encode_passes",
    "forward_batches",
    "runs_layers",
    "same_bits",
    "sub_passes",
]

#: The encoder's batches the records were made with: each 1,024-image chunk of what is to encode is
#: one forward pass. On a CPU a chunk runs as passes of FORWARD_BATCH (``forward_batches``).
RECORDED_BATCH = 1024
#: On a CPU, passes of 256 images are 10-40% faster than of 1,024 (cache-sized activations) and give
#: the same codes: oneDNN's convolutions compute each image alike at every batch of 256 or more
#: (checked for every architecture, 1 and 3 channels, batches 256-4,096; tests/runner/
#: test_evaluation_options.py checks it on the machine it runs on). Below 256 they may not.
FORWARD_BATCH = 256
#: Every this many images encoded in whole passes, their freed activations go back to the OS (a trim
#: costs about a millisecond; the small batches of a metric that encodes point by point are not worth
#: one each). Sub-passes run side by side are not counted: each thread's activations (about
#: 10 MB for 32 to 36 images) are reused by its next sub-pass, and trimming them between
#: sub-passes made the threads fault the same pages back in (the β-VAE score's encoding at the
#: study's settings, an ad-hoc probe on a 2-core AMD EPYC: 70.5 s trimming every 256 images,
#: 65.8 s without).
TRIM_AFTER_IMAGES = 256


def runs_layers(model: VAE | Any) -> bool:
    """Whether ``model`` encodes with the core's own ``encode`` through a plain ``nn.Sequential``.

    Only such a model's layers are run by the runner itself (in place, fused, side by side); any
    other object (a TorchScript module, a representation trained elsewhere) is called as it is,
    one pass at a time, on all threads: nothing is assumed about its thread safety.
    """
    return (
        getattr(type(model), "encode", None) is VAE.encode
        and type(getattr(model, "encoder", None)) is torch.nn.Sequential
    )


def _nchw_layers(
    layers: list[torch.nn.Module], x: torch.Tensor, first_conv: FirstConvCheck | None
) -> torch.Tensor:
    """``layers`` on ``x`` as PyTorch runs them, ReLUs in place, a 1-channel first convolution fused."""
    h = x  # (B, C, H, W)
    fuse = first_conv is not None and len(layers) > 1 and type(layers[1]) is torch.nn.ReLU
    if fuse and fusable(layers[0], x):
        h = first_conv_relu(layers[0], x, first_conv)  # (B, C', H', W'), ReLU applied
        layers = layers[2:]
    for layer in layers:
        h = torch.relu_(h) if type(layer) is torch.nn.ReLU and h is not x else layer(h)
    return h


def encode_for_scoring(
    model: VAE | Any,
    x: torch.Tensor,
    first_conv: FirstConvCheck | None = None,
    blocked: BlockedConvs | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``model.encode(x)``, its ReLUs applied in place where the encoder is a plain ``nn.Sequential``.

    ReLU is exact (max(x, 0)), so in place gives the same codes to the bit, and saves writing a
    second copy of each activation (the first convolution's is 32 x 32 x 32 floats an image):
    10-25% faster encoding on a 2-core CPU. With ``first_conv`` (one per encoding), a 1-channel
    first convolution and its ReLU run as ``first_conv.first_conv_relu``: oneDNN's numbers,
    checked against PyTorch's on each input shape's first pass (the speed-up measured is in
    ``first_conv``'s docstring). With ``blocked`` (``BlockedConvs.of`` the encoder's layers, one
    per encoding), the leading convolutions run on oneDNN's blocked tensors instead, once their
    output on the input's shape and threads was found equal to the bit to those layers' in NCHW
    (computed both ways on that key's second pass: a key seen once, such as a short chunk's
    pass, costs no check). Only without autograd, and only for the core's
    own ``encode``; anything else is encoded by its ``encode``.
    """
    if torch.is_grad_enabled() or not runs_layers(model):
        return model.encode(x)
    layers = list(model.encoder)
    if blocked is not None and blocked.applies(x):
        key = blocked.key(x)
        agrees = blocked.agrees.get(key)
        if agrees:
            h = blocked.run(x)
        else:
            h = _nchw_layers(layers[: blocked.count], x, first_conv)
            if agrees is None and key in blocked.seen:  # the key's second pass: compared, NCHW kept
                blocked.agrees[key] = same_bits((h,), (blocked.run(x),))
            blocked.seen.add(key)
        h = _nchw_layers(layers[blocked.count :], h, None)
    else:
        h = _nchw_layers(layers, x, first_conv)
    mean, logvar = h.chunk(2, dim=1)  # (B, D) each, as VAE.encode
    return mean, logvar


def forward_batches(n: int, device: torch.device, batch: int | None = None) -> list[slice]:
    """The forward passes (slices of ``range(n)``) that encode ``n`` images with the recorded codes.

    On a CPU, passes of FORWARD_BATCH giving the codes of the recorded 1,024-image passes; elsewhere
    the recorded passes themselves. Each 1,024-image chunk (the remainder chunk too) is cut into
    passes of FORWARD_BATCH, the last taking the chunk's remainder (so every pass of a chunk of 256
    or more holds at least 256 images); a chunk under 256 stays one pass, as it was.
    """
    if batch is not None:  # a named option (EvaluationOptions.encode_batch): passes of exactly that size
        return [slice(start, min(start + batch, n)) for start in range(0, n, batch)]
    passes = []
    for start in range(0, n, RECORDED_BATCH):
        stop = min(start + RECORDED_BATCH, n)
        if device.type != "cpu" or stop - start < 2 * FORWARD_BATCH:
            passes.append(slice(start, stop))
            continue
        cuts = list(range(start, stop - FORWARD_BATCH + 1, FORWARD_BATCH))  # each >= 256 to the next cut
        passes += [slice(a, b) for a, b in zip(cuts, [*cuts[1:], stop])]
    return passes


#: A pass's codes: mean (B, D) and logvar (B, D) or None.
Codes = tuple[torch.Tensor, torch.Tensor | None]
#: On a CPU, a pass runs as sub-passes of this many images (or a few more: ``sub_passes``) side by
#: side, one thread each (see the module docstring). 32 ran at least as fast as 16 or 64 in a probe.
SIDE_BY_SIDE_BATCH = 32


class PassCheck:
    """Which sub-pass sizes give, on one thread, the bits their images get in a pass on all threads.

    ``agrees[(size, threads)]``: a sub-pass of ``size`` images was computed on one thread and
    compared, bit for bit (mean and logvar), with its images' codes in a whole pass on ``threads``
    threads. A pass of FORWARD_BATCH or more whose sub-pass sizes all agree runs side by side; any
    other pass runs whole on all threads. One per encoding (``CachedEncoder``,
    ``ObservationEncoder``): a model, its input shape and memory format.
    """

    def __init__(self) -> None:
        self.agrees: dict[tuple[int, int], bool] = {}


def sub_passes(batch: slice, size: int = SIDE_BY_SIDE_BATCH) -> list[slice]:
    """``batch`` cut into ``len // size`` slices as even as possible, in order (a short batch stays whole).

    Each slice holds ``size`` images or a few more: a pass of 256 to 511 images (every pass but a
    short chunk's, ``forward_batches``) gives sizes 32 to 36 only, so an encoding checks at most five
    sizes (``PassCheck``), where slices of 32 with the remainder in the last gave 32 sizes.
    """
    n = batch.stop - batch.start
    parts = max(1, n // size)
    longer = n % parts  # the first ``longer`` slices take one image more
    cuts = [batch.start + i * (n // parts) + min(i, longer) for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def same_bits(a: Codes, b: Codes) -> bool:
    """Whether two passes' codes (tensors, None skipped) hold the same bits, NaNs included."""
    bits_a = [t.contiguous().view(torch.int32) for t in a if t is not None]
    bits_b = [t.contiguous().view(torch.int32) for t in b if t is not None]
    return len(bits_a) == len(bits_b) and all(torch.equal(x, y) for x, y in zip(bits_a, bits_b))


def _single_threaded(
    model: VAE | Any, load: Callable[[slice], torch.Tensor], first_conv, blocked, inference: bool
):
    """A pass in a pool thread (set to one thread by the pool's initializer), under the caller's grad mode."""

    def encode(batch: slice) -> Codes:
        with torch.inference_mode() if inference else torch.no_grad():
            return encode_for_scoring(model, load(batch), first_conv, blocked)

    return encode


def one_thread_pool(workers: int) -> ThreadPoolExecutor:
    """``workers`` threads for sub-passes, each set to one torch thread when it starts."""
    return ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,))


def _pool_for_call(pool: ThreadPoolExecutor | None, threads: int):
    """The caller's pool, left open; else a pool of ``threads`` for this call, shut down after it."""
    return contextlib.nullcontext(pool) if pool is not None else one_thread_pool(threads)


def _split(passes: list[slice], check: PassCheck, threads: int) -> tuple[list, list]:
    """The passes that check sub-pass sizes not yet checked (a first pass for each), and the rest.

    Only passes of FORWARD_BATCH or more are split: their images' codes do not depend on the pass
    (``FORWARD_BATCH``), so a sub-pass size checked in one pass holds in every other.
    """
    checking, rest, pending = [], [], set()
    for batch in passes:
        sizes = {(s.stop - s.start, threads) for s in sub_passes(batch)}
        new = sizes - check.agrees.keys() - pending
        if batch.stop - batch.start >= FORWARD_BATCH and new:
            checking.append(batch)
            pending |= sizes
        else:
            rest.append(batch)
    return checking, rest


def encode_passes(
    model: VAE | Any,
    passes: list[slice],
    load: Callable[[slice], torch.Tensor],
    first_conv: FirstConvCheck | None = None,
    check: PassCheck | None = None,
    blocked: BlockedConvs | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor | None]]:
    """``(slice, mean, logvar)`` over ``passes``: the codes ``encode_for_scoring`` gives, in no fixed order.

    ``load(slice)`` gives those images ``(B, C, H, W)`` on the device. With ``check`` (a CPU
    encoding, no autograd, two or more torch threads, a model whose layers the runner runs:
    ``runs_layers``), a pass of FORWARD_BATCH or more whose
    ``sub_passes`` sizes the check found bit-identical runs as those sub-passes side by side, one
    thread each, as many at once as torch has threads; the first pass with a size not yet checked
    runs whole and is checked. Every other pass runs whole on all threads. Either way every image
    gets the codes its pass gets from ``encode_for_scoring`` on all threads. ``pool``: the threads
    of the sub-passes (``one_thread_pool``, as many as torch has threads), kept across calls by the
    caller; else a pool for this call.
    """
    threads = torch.get_num_threads()
    if check is None or threads < 2 or torch.is_grad_enabled() or not runs_layers(model):
        for batch in passes:
            yield (batch, *encode_for_scoring(model, load(batch), first_conv, blocked))
        return
    one_thread = _single_threaded(model, load, first_conv, blocked, torch.is_inference_mode_enabled())
    checking, rest = _split(passes, check, threads)
    try:
        # A checking pass whole on all threads (its codes), then as sub-passes on one thread each.
        references = [
            (batch, encode_for_scoring(model, load(batch), first_conv, blocked)) for batch in checking
        ]
        with _pool_for_call(pool, threads) as sub_pool:
            for batch, (mean, logvar) in references:
                for sub, codes in zip(sub_passes(batch), sub_pool.map(one_thread, sub_passes(batch))):
                    rows = slice(sub.start - batch.start, sub.stop - batch.start)
                    same = same_bits(codes, (mean[rows], None if logvar is None else logvar[rows]))
                    key = (sub.stop - sub.start, threads)
                    check.agrees[key] = check.agrees.get(key, True) and same
        torch.set_num_threads(threads)  # the pool's threads set the process-wide count (MKL's) to one
        for batch, codes in references:
            yield (batch, *codes)
        del references
        side_by_side = []
        for batch in rest:
            subs = sub_passes(batch)
            if batch.stop - batch.start >= FORWARD_BATCH and all(
                check.agrees[(s.stop - s.start, threads)] for s in subs
            ):
                side_by_side += subs
            else:
                yield (batch, *encode_for_scoring(model, load(batch), first_conv, blocked))
        with _pool_for_call(pool, threads) as sub_pool:
            window: deque = deque()  # bounded: a few sub-passes' activations alive at a time
            for batch in side_by_side:
                window.append((batch, sub_pool.submit(one_thread, batch)))
                if len(window) >= 2 * threads:
                    done, future = window.popleft()
                    yield (done, *future.result())
            for done, future in window:
                yield (done, *future.result())
    finally:
        torch.set_num_threads(threads)


class ScoringPasses:
    """One encoding's forward passes, as both of the runner's encoders run them.

    Holds what an encoding keeps between calls: the model, the pass options (``channels_last``,
    ``encode_batch``: ``evaluate.EvaluationOptions``), the checks made so far (the fused first
    convolution's, the blocked layers', the side-by-side passes' on a CPU) and the side-by-side
    passes' threads. Calling it encodes ``n`` images.
    """

    def __init__(
        self,
        model: VAE | Any,
        device: torch.device,
        channels_last: bool = False,
        encode_batch: int | None = None,
    ):
        self.model, self.device, self.encode_batch = model, device, encode_batch
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # The fused first convolution is for the default (contiguous) path; channels_last is PyTorch's own.
        self.first_conv = None if channels_last else FirstConvCheck()
        self.check = PassCheck() if device.type == "cpu" else None
        # On a CPU the leading convolutions run on oneDNN's blocked tensors (checked per shape)
        # Whether the runner runs the model's layers itself on a CPU, in the default layout
        self.cpu_layers = device.type == "cpu" and not channels_last and runs_layers(model)
        self.blocked = BlockedConvs.of(list(model.encoder)) if self.cpu_layers else None
        # The sub-passes' threads, kept from call to call: a metric encodes in many calls (the
        # β-VAE score at the study's settings: 470), and a pool a call cost 5-15% of the encoding
        # (an ad-hoc paired probe of that call pattern against one call, AMD EPYC). Shut down when
        # the encoding is dropped.
        self._pool: tuple[int, ThreadPoolExecutor] | None = None

    def _sub_pass_pool(self) -> ThreadPoolExecutor | None:
        """The encoding's pool for sub-passes side by side, one per torch thread count (CPU only)."""
        if self.check is None:
            return None
        threads = torch.get_num_threads()
        if self._pool is None or self._pool[0] != threads:
            if self._pool is not None:
                self._pool[1].shutdown(wait=False)
            pool = one_thread_pool(threads)
            weakref.finalize(self, pool.shutdown, wait=False)
            self._pool = (threads, pool)
        return self._pool[1]

    def passes(self, n: int) -> list[slice]:
        """The forward passes that encode ``n`` images with this encoding's codes (``forward_batches``)."""
        return forward_batches(n, self.device, self.encode_batch)

    def same_codes_in_long_passes(self) -> bool:
        """Whether an image gets the same codes in every pass of FORWARD_BATCH or more images.

        On a CPU with the default passes and a model whose layers the runner runs: so it does
        (``FORWARD_BATCH``; the side-by-side and blocked runs are checked to give a whole pass's
        codes). With channels_last, another pass size, or another device, nothing is assumed.
        """
        return self.cpu_layers and self.encode_batch is None

    def __call__(
        self, n: int, load: Callable[[slice], torch.Tensor]
    ) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor | None]]:
        """``run`` over ``passes(n)``: ``n`` images; ``load(slice)``: float32 images on the device."""
        return self.run(self.passes(n), load)

    def run(
        self, passes: list[slice], load: Callable[[slice], torch.Tensor]
    ) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor | None]]:
        """``encode_passes`` over ``passes`` (of ``passes(n)``); ``load(slice)``: float32 images.

        Every TRIM_AFTER_IMAGES images encoded in whole passes, the freed activations (~0.3 MB an
        image) go back to the OS, so they are not kept as resident memory; a pass run as sub-passes
        side by side keeps only its threads' activations, about 10 MB each (the evaluation trims after
        each metric).
        """

        def formatted(batch: slice) -> torch.Tensor:
            return load(batch).contiguous(memory_format=self.memory_format)

        # A yielded slice that is one of the passes ran whole; a sub-pass is a strict part of a pass
        # of FORWARD_BATCH or more (``sub_passes`` cuts it in eight or more).
        whole = {(batch.start, batch.stop) for batch in passes}
        untrimmed = 0
        for batch, mean, logvar in encode_passes(
            self.model, passes, formatted, self.first_conv, self.check, self.blocked, self._sub_pass_pool()
        ):
            yield batch, mean, logvar
            if (batch.start, batch.stop) not in whole:
                continue
            untrimmed += batch.stop - batch.start
            if untrimmed >= TRIM_AFTER_IMAGES:
                release_freed_memory()
                untrimmed = 0
