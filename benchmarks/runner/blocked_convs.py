"""An encoder's leading convolutions and ReLUs in oneDNN's blocked layout: the same numbers, no reorders.

On a CPU, PyTorch runs an fp32 convolution through oneDNN, whose direct convolution kernel reads and
writes a blocked layout (``aBcd16b``, channels in blocks of 16, on AVX-512). With NCHW tensors every
convolution reorders its input into that layout and its output back, and every ReLU is a pass over
the NCHW tensor in between: for ``dlib_conv`` on 32 images, the reorders around its second
convolution took about as long as the convolution itself (``ONEDNN_VERBOSE=1``, one thread, the
AMD EPYC of results/perf/eval_cost_cpu.md).

``BlockedConvs`` keeps the activations in oneDNN's own tensors (``Tensor.to_mkldnn``) from the
image to the last convolution of the encoder's leading run of ``Conv2d`` and ``ReLU`` layers:
``torch.mkldnn_convolution`` with the same weights and bias, ReLUs in place, one reorder back to
NCHW at the end. The verbose log shows the same kernel (``jit:avx512_core``, ``aBcd16b`` in and
out) either way: every output is the same sum in the same order. That is not assumed: the second
pass of each input shape and thread count is computed both ways and compared bit for bit, and a
difference sends that shape back to the NCHW layers for the rest of the encoding
(``BlockedConvs.agrees``), so the codes are the model's own. A shape's first pass runs in NCHW
unchecked: a shape seen once (a short chunk's pass: the β-VAE score's 470 calls at the study's
settings end in passes of many sizes) would gain nothing from the check.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["BlockedConvs"]


def _blockable(layer: nn.Module) -> bool:
    if type(layer) is nn.ReLU:
        return True
    return (
        type(layer) is nn.Conv2d
        and layer.padding_mode == "zeros"
        and not isinstance(layer.padding, str)
        and layer.weight.dtype == torch.float32
        and layer.weight.device.type == "cpu"
    )


class BlockedConvs:
    """The leading ``Conv2d``/``ReLU`` layers of a ``nn.Sequential`` encoder, run on oneDNN tensors.

    ``count`` layers are covered (ending with a convolution or its ReLU); ``run(x)`` gives their
    output as a dense NCHW tensor. ``seen`` holds the input shapes and thread counts (``key``)
    passed so far; ``agrees[key]`` whether the blocked layers gave the NCHW layers' bits on that
    key's second pass.
    One per encoding (``ScoringPasses``): a model and its weights as they are when it is built.
    """

    def __init__(self, layers: list[nn.Module]):
        self.count = len(layers)
        self.steps: list[tuple[Any, ...] | None] = []  # per layer: a convolution's arguments, None a ReLU
        for layer in layers:
            if type(layer) is nn.ReLU:
                self.steps.append(None)
                continue
            weight = torch._C._nn.mkldnn_reorder_conv2d_weight(
                layer.weight.detach().to_mkldnn(), layer.padding, layer.stride, layer.dilation, layer.groups
            )
            bias = None if layer.bias is None else layer.bias.detach().to_mkldnn()
            self.steps.append((weight, bias, layer.padding, layer.stride, layer.dilation, layer.groups))
        self.seen: set[tuple] = set()
        self.agrees: dict[tuple, bool] = {}

    @classmethod
    def of(cls, layers: list[nn.Module]) -> BlockedConvs | None:
        """The blocked run of ``layers``' leading convolutions and ReLUs; None where there is none."""
        if not torch.backends.mkldnn.is_available():
            return None
        run = 0
        while run < len(layers) and _blockable(layers[run]):
            run += 1

        def ends_a_convolution(n: int) -> bool:  # layers[:n] end with a convolution, or its ReLU
            last = type(layers[n - 1])
            return last is nn.Conv2d or (last is nn.ReLU and n >= 2 and type(layers[n - 2]) is nn.Conv2d)

        while run and not ends_a_convolution(run):
            run -= 1
        if not any(type(layer) is nn.Conv2d for layer in layers[:run]):
            return None
        return cls(layers[:run])

    def applies(self, x: torch.Tensor) -> bool:
        """Whether ``x`` can run blocked: float32 (B, C, H, W), B >= 1, on the CPU, without autograd."""
        return (
            x.dtype == torch.float32
            and x.device.type == "cpu"
            and x.dim() == 4
            and x.shape[0] > 0
            and x.is_contiguous()
            and not torch.is_grad_enabled()
        )

    def key(self, x: torch.Tensor) -> tuple:
        """What could make oneDNN choose another kernel: the input's shape and the threads."""
        return (tuple(x.shape), torch.get_num_threads())

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """The covered layers on ``x`` (B, C, H, W): their output, dense NCHW."""
        h = x.to_mkldnn()
        for step in self.steps:
            h = torch.relu_(h) if step is None else torch.mkldnn_convolution(h, *step)
        return h.to_dense()
