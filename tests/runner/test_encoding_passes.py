"""Passes side by side: single-threaded sub-passes give each image the codes of its pass on all threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiled_toy import TiledToy

from benchmarks.runner import encoding
from benchmarks.runner.encoding import (
    PassCheck,
    ScoringPasses,
    encode_passes,
    forward_batches,
    sub_passes,
)
from benchmarks.runner.evaluate import CachedEncoder, ObservationEncoder
from benchmarks.runner.first_conv import FirstConvCheck
from vae_zoo import create_model

CPU = torch.device("cpu")
two_threads = pytest.mark.skipif(torch.get_num_threads() < 2, reason="side by side needs two torch threads")


def bits(codes) -> torch.Tensor:
    """Mean and logvar as float32 bit patterns (torch.equal calls -0.0 and 0.0 equal)."""
    return torch.cat([t.contiguous().view(torch.int32) for t in codes], 1)


def encoded(model, x, passes, first_conv=None, check=None) -> torch.Tensor:
    """The codes of ``encode_passes`` put back in image order: (N, 2 D) int32 bits."""
    parts = sorted(encode_passes(model, passes, lambda b: x[b], first_conv, check), key=lambda p: p[0].start)
    return torch.cat([bits((mean, logvar)) for _, mean, logvar in parts])


def one_ulp_off_at_32_on_one_thread(monkeypatch, one_thread_calls: list | None = None) -> None:
    """Make a sub-pass of 32 images one ulp off on one thread (its size's check then fails).

    ``one_thread_calls`` collects the sizes of the passes encoded on one thread.
    """
    real = encoding.encode_for_scoring

    def off_by_one_ulp(model, x, first_conv=None, blocked=None):
        mean, logvar = real(model, x, first_conv, blocked)
        if torch.get_num_threads() == 1:
            if one_thread_calls is not None:
                one_thread_calls.append(len(x))
            if len(x) == 32:
                mean = torch.nextafter(mean, torch.full_like(mean, np.inf))
        return mean, logvar

    monkeypatch.setattr(encoding, "encode_for_scoring", off_by_one_ulp)


def test_sub_passes_cover_a_pass_in_order_as_evenly_as_possible():
    sizes = lambda b: [s.stop - s.start for s in sub_passes(b, 32)]  # noqa: E731
    assert sizes(slice(0, 256)) == [32] * 8
    assert sizes(slice(1024, 1024 + 344)) == [35] * 4 + [34] * 6  # 344 = 10 x 34 + 4
    assert sizes(slice(5, 20)) == [15] and sizes(slice(0, 32)) == [32] and sizes(slice(0, 63)) == [63]
    for start, stop in ((0, 0), (3, 4), (7, 300), (0, 1024)):
        pieces = sub_passes(slice(start, stop), 32)
        assert [i for p in pieces for i in range(p.start, p.stop)] == list(range(start, stop))
    # Every pass of a chunk of 256 or more (256 to 511 images) has sub-passes of 32 to 36: five sizes.
    assert {size for n in range(256, 512) for size in sizes(slice(0, n))} == {32, 33, 34, 35, 36}


@two_threads
@pytest.mark.parametrize("architecture", ["locatello", "dlib_conv", "burgess"])
@pytest.mark.parametrize("channels", [1, 3])
def test_side_by_side_gives_the_codes_of_whole_passes_on_all_threads(architecture, channels):
    """Every architecture, 1 and 3 channels: the recorded passes' codes to the bit, and it ran side by side.

    Passes of 256, 256 and 344 (one recorded chunk of 856): sub-passes of 32, and of 35 and 34, each
    size checked on its first pass; both agree on this machine (the check is what guarantees the
    codes elsewhere), so the other pass ran as sub-passes.
    """
    torch.manual_seed(0)
    model = create_model("vae", architecture=architecture, in_channels=channels, latent_dim=10).eval()
    x = (torch.rand(512 + 344, channels, 64, 64, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    passes = forward_batches(len(x), CPU)
    threads = torch.get_num_threads()
    with torch.inference_mode():
        recorded = torch.cat([bits(model.encode(x[i : i + 1024])) for i in range(0, len(x), 1024)])
        check = PassCheck()
        assert torch.equal(encoded(model, x, passes, FirstConvCheck(), check), recorded)
        assert check.agrees == {(32, threads): True, (34, threads): True, (35, threads): True}
        assert torch.get_num_threads() == threads  # the pool's threads set it to one; it is restored
        # A second encoding with the same check: nothing checked again, every pass side by side.
        assert torch.equal(encoded(model, x, passes, FirstConvCheck(), check), recorded)
        assert len(check.agrees) == 3


@two_threads
def test_an_encoding_keeps_its_sub_pass_threads_from_call_to_call_and_stops_them_when_dropped():
    """One pool for all of an encoding's calls (a metric encodes in hundreds), the same codes."""
    import gc

    torch.manual_seed(0)
    model = create_model("vae", architecture="dlib_conv", in_channels=1, latent_dim=10).eval()
    x = (torch.rand(900, 1, 64, 64, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    encode = ScoringPasses(model, CPU)
    threads = torch.get_num_threads()
    pools = []
    with torch.no_grad():
        for start in (0, 300, 600):  # three calls of 300 images, each run side by side
            images = x[start : start + 300]
            parts = sorted(encode(len(images), lambda b, images=images: images[b]), key=lambda p: p[0].start)
            codes = torch.cat([bits((mean, logvar)) for _, mean, logvar in parts])
            assert torch.equal(codes, bits(model.encode(images)))
            pools.append(encode._pool[1])
    assert pools[0] is pools[1] is pools[2] and encode._pool[0] == threads
    assert torch.get_num_threads() == threads
    del encode, parts
    gc.collect()
    assert pools[0]._shutdown  # the encoding dropped, its threads are told to stop


@two_threads
def test_a_size_whose_single_threaded_codes_differ_never_runs_side_by_side(monkeypatch):
    """A sub-pass one ulp off is caught on its size's first pass; passes holding that size run whole."""
    torch.manual_seed(0)
    model = create_model("vae", architecture="dlib_conv", in_channels=1, latent_dim=10).eval()
    x = torch.rand(1024 + 300, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    passes = forward_batches(len(x), CPU)  # 256 x 4 (sub-passes of 32), then 300 (34 x 3 and 33 x 6)
    threads = torch.get_num_threads()
    one_thread_calls = []
    one_ulp_off_at_32_on_one_thread(monkeypatch, one_thread_calls)
    with torch.no_grad():
        recorded = torch.cat([bits(model.encode(x[i : i + 1024])) for i in range(0, len(x), 1024)])
        check = PassCheck()
        assert torch.equal(encoded(model, x, passes, None, check), recorded)
        assert check.agrees == {(32, threads): False, (33, threads): True, (34, threads): True}
        # Only the two checking passes (the first 256, the 300) ran on one thread.
        assert sorted(one_thread_calls) == [32] * 8 + [33] * 6 + [34] * 3
        one_thread_calls.clear()
        # Again: the passes of 256 (sub-passes of 32) run whole; the 300, whose sizes agree, side by side.
        assert torch.equal(encoded(model, x, passes, None, check), recorded)
        assert sorted(one_thread_calls) == [33] * 6 + [34] * 3


@two_threads
def test_an_error_in_a_pool_thread_is_raised_and_the_threads_restored():
    model = create_model("vae", architecture="dlib_conv", in_channels=1, latent_dim=4).eval()
    x = torch.rand(600, 1, 64, 64)
    threads = torch.get_num_threads()
    check = PassCheck()
    check.agrees.update({(33, threads): True, (34, threads): True})  # checked before: straight to the pool

    def broken(batch):
        if torch.get_num_threads() == 1:
            raise RuntimeError("a bug in a pass")
        return x[batch]

    with torch.no_grad(), pytest.raises(RuntimeError, match="a bug in a pass"):
        list(encode_passes(model, [slice(0, 300), slice(300, 600)], broken, None, check))
    assert torch.get_num_threads() == threads


def test_one_thread_autograd_short_passes_or_no_check_run_each_pass_whole():
    """Nothing side by side without a check, with autograd, on one torch thread, or under 256 images."""
    model = create_model("vae", architecture="dlib_conv", in_channels=1, latent_dim=4).eval()
    x = torch.rand(600, 1, 64, 64)
    passes = [slice(0, 300), slice(300, 600)]
    with torch.no_grad():
        expected = encoded(model, x, passes)  # no check: whole passes
    check = PassCheck()
    with torch.enable_grad():
        out = list(encode_passes(model, passes, lambda b: x[b], None, check))
    assert [b for b, *_ in out] == passes and not check.agrees
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            assert torch.equal(encoded(model, x, passes, None, check), expected)
    finally:
        torch.set_num_threads(threads)
    assert not check.agrees
    with torch.no_grad():  # passes under FORWARD_BATCH: whole, unchecked
        short = [slice(0, 200), slice(200, 400), slice(400, 600)]
        assert torch.equal(encoded(model, x, short, None, check), expected)
    assert not check.agrees


@two_threads
def test_both_encoders_get_the_codes_of_whole_passes():
    """CachedEncoder (by grid index) and ObservationEncoder (images) with and without side by side."""
    dataset = TiledToy(1024 + 700)
    torch.manual_seed(0)
    model = create_model("vae", architecture="dlib_conv", in_channels=1, latent_dim=4).eval()
    indices = np.random.RandomState(0).permutation(len(dataset))
    codes = {}
    for side_by_side in (False, True):
        cached = CachedEncoder(model, dataset, CPU)
        observed = ObservationEncoder(model, CPU)
        if not side_by_side:
            cached.forward.check = observed.forward.check = None
        codes[side_by_side] = (
            *cached.posterior_of(indices),
            *observed.posterior_of(dataset.images_at(np.sort(indices))),
        )
        if side_by_side:
            for encoder in (cached, observed):
                assert encoder.forward.check.agrees and all(encoder.forward.check.agrees.values())
    for a, b in zip(codes[False], codes[True]):
        assert np.array_equal(a.view(np.int64), b.view(np.int64), equal_nan=False)
    order = np.argsort(indices)  # the cached codes by index are the observed codes in sorted order
    assert np.array_equal(codes[True][0][order].view(np.int64), codes[True][2].view(np.int64))


def test_a_model_the_runner_does_not_run_layer_by_layer_is_called_whole_from_the_calling_thread():
    """A representation trained elsewhere (any object with ``encode``): nothing assumed of its threads."""
    import threading

    class Elsewhere:
        def __init__(self, model):
            self.model, self.threads = model, set()

        def encode(self, x):
            self.threads.add(threading.get_ident())
            return self.model.encode(x)

    model = Elsewhere(create_model("vae", architecture="dlib_conv", in_channels=1, latent_dim=4).eval())
    x = torch.rand(600, 1, 64, 64)
    check = PassCheck()
    with torch.no_grad():
        out = list(
            encode_passes(model, [slice(0, 300), slice(300, 600)], lambda b: x[b], FirstConvCheck(), check)
        )
    assert [b for b, *_ in out] == [slice(0, 300), slice(300, 600)]
    assert model.threads == {threading.get_ident()} and not check.agrees


@two_threads
def test_the_heap_is_trimmed_after_whole_passes_only(monkeypatch):
    """Every 256 images of whole passes trims the heap; passes run side by side never do.

    Size 32 is made to disagree (one ulp on one thread), so the passes of 256 run whole on every
    encoding, while the pass of 300 runs whole only while its sizes are checked, side by side after.
    """
    torch.manual_seed(0)
    model = create_model("vae", architecture="dlib_conv", in_channels=1, latent_dim=4).eval()
    x = torch.rand(1024 + 300, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    trims = []
    one_ulp_off_at_32_on_one_thread(monkeypatch)
    monkeypatch.setattr(encoding, "release_freed_memory", lambda: trims.append(True))
    forward = encoding.ScoringPasses(model, CPU)
    with torch.no_grad():
        first = sorted((b.start, b.stop) for b, *_ in forward(len(x), lambda b: x[b]))
        assert first == [(0, 256), (256, 512), (512, 768), (768, 1024), (1024, 1324)]  # all whole
        assert len(trims) == 5
        trims.clear()
        second = [(b.start, b.stop) for b, *_ in forward(len(x), lambda b: x[b])]
        assert len(second) == 4 + 9 and (1024, 1324) not in second  # the 300 as nine sub-passes
        assert len(trims) == 4  # after each pass of 256; none for the sub-passes' 300 images
