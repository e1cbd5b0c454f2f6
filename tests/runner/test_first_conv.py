"""The fused first convolution: PyTorch's numbers to the bit, or PyTorch itself."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.runner import first_conv
from benchmarks.runner.first_conv import FirstConvCheck, first_conv_relu, fusable

pytestmark = pytest.mark.skipif(not first_conv.HAVE_NUMBA, reason="the fused layer needs numba")


def bits(t: torch.Tensor) -> torch.Tensor:
    """The float32 bit patterns: torch.equal calls -0.0 and 0.0 equal, a code's bits do not."""
    return t.contiguous().view(torch.int32)


def images(n: int, size: int, binary: bool, seed: int) -> torch.Tensor:
    x = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))
    return (x < 0.2).float() if binary else x


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "continuous"])
@pytest.mark.parametrize(
    ("stride", "padding", "size", "channels"),
    [(2, 1, 64, 32), (2, 0, 64, 32), (1, 1, 17, 3), (3, 2, 28, 16), (2, 1, 33, 8)],
)
def test_the_fused_layer_is_pytorchs_conv_and_relu_to_the_bit(binary, stride, padding, size, channels):
    """Every geometry, at the batch sizes the scoring runs, on binary and continuous images.

    Binary images (dSprites) make every product exact; continuous ones make the order of the
    fused multiply-adds matter.
    """
    torch.manual_seed(stride * 100 + padding * 10 + channels)
    conv = nn.Conv2d(1, channels, 4, stride=stride, padding=padding)
    with torch.no_grad():
        for n in (1, 7, 256, 300):
            x = images(n, size, binary, seed=n)
            assert fusable(conv, x)
            reference = torch.relu(conv(x))
            fused = first_conv._fused(conv, x, threads=2)
            assert fused.shape == reference.shape
            assert torch.equal(bits(fused), bits(reference)), (n, int((bits(fused) != bits(reference)).sum()))


def test_signed_zeros_come_out_as_pytorchs():
    """All taps zero: +0 + bias -0.0 is +0.0, and ReLU of a negative is +0.0, in both."""
    conv = nn.Conv2d(1, 2, 4, stride=2, padding=1)
    with torch.no_grad():
        conv.bias.copy_(torch.tensor([-0.0, -1.0]))
        x = torch.zeros(3, 1, 8, 8)
        reference = torch.relu(conv(x))
        assert not torch.signbit(reference).any()
        assert torch.equal(bits(first_conv._fused(conv, x, threads=1)), bits(reference))


def test_a_shape_is_checked_against_pytorch_on_its_first_pass_and_a_disagreement_keeps_pytorch(monkeypatch):
    conv = nn.Conv2d(1, 4, 4, stride=2, padding=1)
    x = images(16, 64, binary=False, seed=0)
    with torch.no_grad():
        reference = torch.relu(conv(x))
        check = FirstConvCheck()
        assert torch.equal(bits(first_conv_relu(conv, x, check)), bits(reference))
        assert list(check.agrees.values()) == [True]
        # A kernel that is off by one ulp anywhere is caught on the first pass of its shape ...
        real = first_conv._fused

        def off_by_an_ulp(conv, x, threads):
            out = real(conv, x, threads)
            out[0, 0, 0, 0] = torch.nextafter(out[0, 0, 0, 0], torch.tensor(float("inf")))
            return out

        monkeypatch.setattr(first_conv, "_fused", off_by_an_ulp)
        check = FirstConvCheck()
        for _ in range(3):  # ... and PyTorch computes that shape from then on
            assert torch.equal(bits(first_conv_relu(conv, x, check)), bits(reference))
        assert list(check.agrees.values()) == [False]
        # A new shape is checked again.
        assert torch.equal(bits(first_conv_relu(conv, x[:5], check)), bits(torch.relu(conv(x[:5]))))
        assert len(check.agrees) == 2


def test_only_what_the_kernel_computes_is_fused():
    x = images(2, 64, binary=True, seed=0)
    with torch.no_grad():
        assert fusable(nn.Conv2d(1, 8, 4, stride=2, padding=1), x)
        assert not fusable(nn.Conv2d(3, 8, 4, stride=2, padding=1), x.expand(2, 3, 64, 64))
        assert not fusable(nn.Conv2d(1, 8, 3, stride=2, padding=1), x)
        assert not fusable(nn.Conv2d(1, 8, 4, stride=2, padding=1, bias=False), x)
        assert not fusable(nn.Conv2d(1, 8, 4, stride=(2, 1), padding=1), x)
        assert not fusable(nn.Conv2d(1, 8, 4, stride=2, padding=1, dilation=2), x)
        assert not fusable(nn.Conv2d(1, 8, 4, stride=2, padding=1, padding_mode="reflect"), x)
        assert not fusable(nn.Conv2d(1, 8, 4, stride=2, padding=1), x.double())
    with torch.enable_grad():  # training keeps PyTorch's layer (and its autograd)
        assert not fusable(nn.Conv2d(1, 8, 4, stride=2, padding=1), x)
