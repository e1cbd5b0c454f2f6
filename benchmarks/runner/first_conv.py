"""An encoder's first convolution and its ReLU, on one input channel, in oneDNN's own order.

On a CPU, PyTorch runs a 1-channel convolution (dSprites, smallNORB) through oneDNN at a small
fraction of the machine's matmul rate: for ``dlib_conv`` the first layer is 1 MFLOP of an image's
11.5, but a large share of its encoding time, and its ReLU is a separate pass over 32 x 32 x 32
floats. Scoring a model at the study's settings encodes nearly the whole dSprites grid (about
700,000 images).

``first_conv_relu`` computes the same numbers, bit for bit, faster (the whole encoding in NCHW
passes of 256 1.18x on the AMD EPYC of results/perf/eval_cost_cpu.md's encoding table, 1.07-1.22x
there in its earlier runs, 1.19x on the Intel Xeon of an earlier one). Where the runner keeps the
convolutions on oneDNN's blocked tensors (``blocked_convs``), the first one runs there too: this
layer serves the passes run in NCHW (a shape's first pass, or one the blocked layers disagree on).
Each output is oneDNN's sum, the kernel's taps
(row by row, then column by column) accumulated with fused multiply-adds from zero, the bias
added last, then ``torch.relu``'s ``v < 0 ? 0 : v`` (-0 stays -0, NaN stays NaN). That order was
found by comparing candidate orders with PyTorch's output (tests/runner/test_first_conv.py holds
it to PyTorch's on binary and continuous images, the batch sizes the scoring uses, several
strides and paddings); it is not assumed on other machines: the first pass of each input shape
is computed both ways and compared bit for bit, and a difference sends that shape back to
PyTorch for the rest of the encoding (``FirstConvCheck``). The codes, and so every score, are
the model's own.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

try:  # without numba the layer runs in PyTorch, as it always did
    import numba
    from llvmlite import ir
    from numba.core import cgutils
    from numba.extending import intrinsic
except ImportError:  # pragma: no cover - exercised only where numba is missing (the GPU image)
    numba = None

__all__ = ["FirstConvCheck", "first_conv_relu", "fusable"]

HAVE_NUMBA = numba is not None

if HAVE_NUMBA:

    @intrinsic
    def _fma(typingctx, a, b, c):
        """fma(a, b, c) = a * b + c rounded once (LLVM's ``llvm.fma.f32``): what oneDNN's kernels do."""
        signature = numba.float32(numba.float32, numba.float32, numba.float32)

        def codegen(context, builder, sig, args):
            f32 = ir.FloatType()
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(f32, [f32] * 3), "llvm.fma.f32"
            )
            return builder.call(function, args)

        return signature, codegen

    @numba.njit(cache=True, nogil=True)
    def _conv4x4_relu_1ch(phases, offsets, weight, bias, out, first, stop):
        """ReLU(conv) of a 4 x 4 kernel for images first..stop-1 into out (B, C, OH, OW) float32.

        phases: (B, P) float32, each image zero-padded and split by phase (``_phases``), so that a
        tap's inputs along an output row are contiguous; offsets: 16 uint64, where tap 4 i + j
        reads output position (0, 0)'s input; weight: (C, 16) float32, taps row by row; bias:
        (C,) float32. Each output accumulates its 16 taps in oneDNN's order (rows, then columns)
        in a register, taps and offsets held in scalars so that the loop over a row vectorises.
        Indices are unsigned: numba adds no negative-index wraparound.
        """
        n_channels = weight.shape[0]
        out_h, out_w = np.uint64(out.shape[2]), np.uint64(out.shape[3])
        row_stride = np.uint64(offsets[16])
        # fmt: off
        o0, o1, o2, o3, o4, o5, o6, o7 = offsets[0], offsets[1], offsets[2], offsets[3], offsets[4], \
            offsets[5], offsets[6], offsets[7]
        o8, o9, o10, o11, o12, o13, o14, o15 = offsets[8], offsets[9], offsets[10], offsets[11], \
            offsets[12], offsets[13], offsets[14], offsets[15]
        # fmt: on
        source = phases.reshape(-1)
        target = out.reshape(-1)
        for b in range(first, stop):
            image = np.uint64(b) * np.uint64(phases.shape[1])
            for c in range(n_channels):
                # fmt: off
                w0, w1, w2, w3, w4, w5, w6, w7 = weight[c, 0], weight[c, 1], weight[c, 2], weight[c, 3], \
                    weight[c, 4], weight[c, 5], weight[c, 6], weight[c, 7]
                w8, w9, w10, w11, w12, w13, w14, w15 = weight[c, 8], weight[c, 9], weight[c, 10], \
                    weight[c, 11], weight[c, 12], weight[c, 13], weight[c, 14], weight[c, 15]
                # fmt: on
                bc = bias[c]
                at = np.uint64(b * n_channels + c) * out_h * out_w
                for oh in range(out_h):
                    row = image + oh * row_stride
                    dest = at + oh * out_w
                    for ow in range(out_w):
                        acc = _fma(w0, source[row + o0 + ow], np.float32(0.0))
                        acc = _fma(w1, source[row + o1 + ow], acc)
                        acc = _fma(w2, source[row + o2 + ow], acc)
                        acc = _fma(w3, source[row + o3 + ow], acc)
                        acc = _fma(w4, source[row + o4 + ow], acc)
                        acc = _fma(w5, source[row + o5 + ow], acc)
                        acc = _fma(w6, source[row + o6 + ow], acc)
                        acc = _fma(w7, source[row + o7 + ow], acc)
                        acc = _fma(w8, source[row + o8 + ow], acc)
                        acc = _fma(w9, source[row + o9 + ow], acc)
                        acc = _fma(w10, source[row + o10 + ow], acc)
                        acc = _fma(w11, source[row + o11 + ow], acc)
                        acc = _fma(w12, source[row + o12 + ow], acc)
                        acc = _fma(w13, source[row + o13 + ow], acc)
                        acc = _fma(w14, source[row + o14 + ow], acc)
                        acc = _fma(w15, source[row + o15 + ow], acc)
                        v = acc + bc
                        target[dest + ow] = np.float32(0.0) if v < 0 else v


def fusable(conv: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``first_conv_relu`` can compute ``conv`` on ``x`` (else PyTorch does)."""
    return (
        HAVE_NUMBA
        and type(conv) is nn.Conv2d
        and conv.in_channels == 1
        and conv.kernel_size == (4, 4)
        and conv.groups == 1
        and conv.dilation == (1, 1)
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and conv.stride[0] == conv.stride[1]
        and conv.bias is not None
        and conv.weight.dtype == torch.float32
        and x.dtype == torch.float32
        and x.device.type == "cpu"
        and x.dim() == 4
        and x.shape[1] == 1
        and not torch.is_grad_enabled()
    )


def _phases(x: torch.Tensor, padding: tuple[int, int], stride: int, out_hw: tuple[int, int]) -> tuple:
    """x (B, 1, H, W) -> phases (B, P) float32 and the 17 offsets ``_conv4x4_relu_1ch`` reads them by.

    Each image zero-padded to (stride PH, stride PW) and split by phase: phase (a, c) is the
    (PH, PW) plane ``padded[stride * h + a, stride * w + c]``. Offsets: tap (i, j) reads phase
    (i % stride, j % stride) from row i // stride, column j // stride; the 17th is PW (a row).
    """
    ph = out_hw[0] + 3 // stride
    pw = out_hw[1] + 3 // stride
    batch, _, height, width = x.shape
    padded = np.zeros((batch, stride * ph, stride * pw), np.float32)
    top, left = padding
    h_in = min(height, stride * ph - top)
    w_in = min(width, stride * pw - left)
    padded[:, top : top + h_in, left : left + w_in] = x.numpy()[:, 0, :h_in, :w_in]
    # (B, PH, s, PW, s) -> (B, s, s, PH, PW)
    phases = padded.reshape(batch, ph, stride, pw, stride).transpose(0, 2, 4, 1, 3).reshape(batch, -1)
    offsets = [
        ((i % stride) * stride + j % stride) * ph * pw + (i // stride) * pw + j // stride
        for i in range(4)
        for j in range(4)
    ]
    return np.ascontiguousarray(phases), np.array([*offsets, pw], np.uint64)


def _fused(conv: nn.Conv2d, x: torch.Tensor, threads: int) -> torch.Tensor:
    """ReLU(conv(x)) by ``_conv4x4_relu_1ch``, the batch split over ``threads`` threads."""
    batch, _, height, width = x.shape
    (pad_h, pad_w), stride = conv.padding, conv.stride[0]
    out_h = (height + 2 * pad_h - 4) // stride + 1
    out_w = (width + 2 * pad_w - 4) // stride + 1
    phases, offsets = _phases(x, (pad_h, pad_w), stride, (out_h, out_w))
    weight = np.ascontiguousarray(conv.weight.detach().numpy().reshape(conv.out_channels, 16))
    bias = np.ascontiguousarray(conv.bias.detach().numpy())
    out = np.empty((batch, conv.out_channels, out_h, out_w), np.float32)
    cuts = np.linspace(0, batch, min(threads, batch) + 1).astype(int)
    args = (phases, offsets, weight, bias, out)
    if len(cuts) <= 2:
        _conv4x4_relu_1ch(*args, 0, batch)
    else:
        with ThreadPoolExecutor(len(cuts) - 1) as pool:
            for job in [pool.submit(_conv4x4_relu_1ch, *args, a, b) for a, b in zip(cuts, cuts[1:])]:
                job.result()
    return torch.from_numpy(out)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


class FirstConvCheck:
    """Which input shapes ``first_conv_relu`` has been checked on against PyTorch, and how they came out.

    A shape's first pass is computed both ways; equal to the bit, the shape uses the fused kernel
    from then on, else PyTorch. One per encoding (``CachedEncoder``, ``ObservationEncoder``).
    """

    def __init__(self) -> None:
        self.agrees: dict[tuple, bool] = {}

    def key(self, conv: nn.Conv2d, x: torch.Tensor) -> tuple:
        """What could make oneDNN choose another kernel: the shapes, the layer's geometry, the threads."""
        geometry = (conv.kernel_size, conv.stride, conv.padding, conv.out_channels)
        return (tuple(x.shape), geometry, torch.get_num_threads())


def first_conv_relu(conv: nn.Conv2d, x: torch.Tensor, check: FirstConvCheck) -> torch.Tensor:
    """``torch.relu(conv(x))`` for a 1-channel ``conv`` (``fusable``), the same bits, faster on a CPU.

    x: (B, 1, H, W) float32 -> (B, C, OH, OW) float32, contiguous.
    """
    threads = max(1, torch.get_num_threads())
    key = check.key(conv, x)
    agrees = check.agrees.get(key)
    if agrees is None:
        reference = torch.relu_(conv(x))
        fused = _fused(conv, x, threads)
        check.agrees[key] = bool(torch.equal(_bits(fused), _bits(reference)))
        return reference
    return _fused(conv, x, threads) if agrees else torch.relu_(conv(x))
