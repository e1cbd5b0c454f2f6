"""The leading convolutions on oneDNN's blocked tensors: PyTorch's NCHW numbers to the bit, or NCHW itself."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.runner import blocked_convs
from benchmarks.runner.blocked_convs import BlockedConvs
from benchmarks.runner.encoding import ScoringPasses, encode_for_scoring
from vae_zoo import create_model

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="needs oneDNN (mkldnn)")


def bits(t: torch.Tensor) -> torch.Tensor:
    """The float32 bit patterns: torch.equal calls -0.0 and 0.0 equal, a code's bits do not."""
    return t.contiguous().view(torch.int32)


def images(n: int, channels: int, binary: bool, seed: int = 0) -> torch.Tensor:
    x = torch.rand(n, channels, 64, 64, generator=torch.Generator().manual_seed(seed))
    return (x < 0.2).float() if binary else x


def test_the_run_covered_is_the_leading_convolutions_and_their_relus():
    conv = lambda c: nn.Conv2d(c, 4, 3, padding=1)  # noqa: E731
    assert BlockedConvs.of([conv(1), nn.ReLU(), conv(4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2)]).count == 4
    assert BlockedConvs.of([conv(1), nn.ReLU(), conv(4), nn.Flatten()]).count == 3
    # the run ends at a convolution or the ReLU right after one; no convolution, no run
    assert BlockedConvs.of([conv(1), nn.ReLU(), nn.ReLU(), conv(4)]).count == 4
    assert BlockedConvs.of([conv(1), nn.ReLU(), nn.ReLU(), nn.Flatten()]).count == 2
    assert BlockedConvs.of([nn.ReLU(), nn.Flatten(), nn.Linear(4, 2)]) is None
    assert BlockedConvs.of([nn.Flatten(), conv(1)]) is None
    # what oneDNN's convolution cannot take as it is stays in NCHW
    assert BlockedConvs.of([nn.Conv2d(1, 4, 3, padding="same"), nn.ReLU()]) is None
    assert BlockedConvs.of([nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect")]) is None
    assert BlockedConvs.of([conv(1), nn.ReLU(), nn.Conv2d(4, 4, 3).double()]).count == 2


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "continuous"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("architecture", ["locatello", "dlib_conv", "burgess"])
def test_blocked_layers_give_the_nchw_layers_bits(architecture, channels, binary, threads):
    """Every convolutional architecture, 1 and 3 channels, the pass sizes the scoring runs, 1 and 2 threads.

    Not every size: on the AMD EPYC where this was written, dlib_conv on a single image gave other
    last bits in NCHW (oneDNN chose another kernel there), which the per-shape check catches
    (the test below).
    """
    torch.manual_seed(channels)
    model = create_model("vae", architecture=architecture, in_channels=channels, latent_dim=10).eval()
    layers = list(model.encoder)
    blocked = BlockedConvs.of(layers)
    assert blocked is not None and blocked.count == 8
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            for n in (7, 32, 36, 256, 300):
                x = images(n, channels, binary, seed=n)
                reference = nn.Sequential(*layers[:8])(x)
                assert torch.equal(bits(blocked.run(x)), bits(reference)), (n, threads)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("architecture", ["locatello", "dlib_conv"])
def test_the_scoring_pass_gives_the_models_own_codes_at_every_size(architecture):
    """Whatever the blocked layers give on a shape, the codes are ``model.encode``'s, pass after pass."""
    torch.manual_seed(0)
    model = create_model("vae", architecture=architecture, in_channels=1, latent_dim=10).eval()
    blocked = BlockedConvs.of(list(model.encoder))
    with torch.no_grad():
        for n in (1, 2, 7, 33, 256):
            x = images(n, 1, binary=True, seed=n)
            expected = bits(torch.cat(model.encode(x), 1))
            for _ in range(3):  # the first pass runs NCHW, the second checks, the third uses the verdict
                assert torch.equal(bits(torch.cat(encode_for_scoring(model, x, None, blocked), 1)), expected)
    assert len(blocked.agrees) == 5
    empty = images(0, 1, binary=True)
    with torch.no_grad():
        for _ in range(3):  # no batch, nothing blocked: the model's own empty codes
            assert encode_for_scoring(model, empty, None, blocked)[0].shape == (0, 10)
    assert not blocked.applies(empty)


def test_a_shape_is_checked_on_its_first_pass_and_a_disagreement_keeps_nchw(monkeypatch):
    torch.manual_seed(0)
    model = create_model("vae", architecture="dlib_conv", in_channels=1, latent_dim=10).eval()
    x = images(40, 1, binary=True)
    with torch.no_grad():
        expected = torch.cat(model.encode(x), 1)
        blocked = BlockedConvs.of(list(model.encoder))
        for _ in range(3):  # NCHW unchecked, then checked (and agrees), then blocked
            assert torch.equal(
                bits(torch.cat(encode_for_scoring(model, x, None, blocked), 1)), bits(expected)
            )
        assert blocked.agrees == {((40, 1, 64, 64), torch.get_num_threads()): True}

        real = BlockedConvs.run
        runs = []

        def off_by_an_ulp(self, x):
            runs.append(len(x))
            out = real(self, x)
            return torch.nextafter(out, torch.full_like(out, float("inf")))

        monkeypatch.setattr(blocked_convs.BlockedConvs, "run", off_by_an_ulp)
        blocked = BlockedConvs.of(list(model.encoder))
        for _ in range(3):
            assert torch.equal(
                bits(torch.cat(encode_for_scoring(model, x, None, blocked), 1)), bits(expected)
            )
        assert list(blocked.agrees.values()) == [False]
        assert runs == [40]  # compared once, never used


def test_the_runners_encoding_is_blocked_on_a_cpu_only_where_it_runs_the_layers():
    torch.manual_seed(0)
    model = create_model("vae", architecture="dlib_conv", in_channels=1, latent_dim=10).eval()
    cpu = torch.device("cpu")
    assert ScoringPasses(model, cpu).blocked is not None
    assert ScoringPasses(model, cpu, channels_last=True).blocked is None  # PyTorch's own NHWC path
    assert ScoringPasses(model, torch.device("meta")).blocked is None  # not a CPU

    class Elsewhere(nn.Module):  # anything that is not the core's own encode is called as it is
        encoder = model.encoder

        def encode(self, x):
            return self.encoder(x).chunk(2, dim=1)

    assert ScoringPasses(Elsewhere(), cpu).blocked is None
