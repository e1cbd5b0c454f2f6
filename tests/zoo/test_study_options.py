"""Known-answer tests of the options that select what disentanglement_lib's study trained.

The options of unsupervised_study_v1: architecture ``dlib_conv``, ``init="tf"``, beta-TCVAE
``estimator="dlib"``, FactorVAE ``discriminator_clip="dlib"``; and the MSS weight matrices (ours
vs Chen et al.'s code).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vae_zoo import ConfigError, create_model
from vae_zoo.architectures import tf_same_conv, tf_same_deconv, tf_same_padding
from vae_zoo.core import Terms
from vae_zoo.initialisers import glorot_limit
from vae_zoo.losses import (
    TC_ESTIMATORS,
    chen_mss_log_importance_weights,
    discriminator_loss,
    gaussian_log_density,
    log_aggregate_posterior,
    mss_log_importance_weights,
)

# -- architecture ---------------------------------------------------------------


def test_dlib_conv_has_the_parameter_count_of_the_study():
    """690,517 for 64x64x1 and 10 latents, from dlib's conv_encoder / deconv_decoder layer by layer."""
    by_hand = {
        "e1 conv 4x4 1->32": 4 * 4 * 1 * 32 + 32,
        "e2 conv 4x4 32->32": 4 * 4 * 32 * 32 + 32,
        "e3 conv 2x2 32->64": 2 * 2 * 32 * 64 + 64,
        "e4 conv 2x2 64->64": 2 * 2 * 64 * 64 + 64,
        "e5 dense 1024->256": 1024 * 256 + 256,
        "means, log_var 256->10": 2 * (256 * 10 + 10),
        "d1 dense 10->256": 10 * 256 + 256,
        "d2 dense 256->1024": 256 * 1024 + 1024,
        "d3 deconv 4x4 64->64": 4 * 4 * 64 * 64 + 64,
        "d4 deconv 4x4 64->32": 4 * 4 * 64 * 32 + 32,
        "d5 deconv 4x4 32->32": 4 * 4 * 32 * 32 + 32,
        "d6 deconv 4x4 32->1": 4 * 4 * 32 * 1 + 1,
    }
    assert sum(by_hand.values()) == 690_517
    model = create_model("vae", architecture="dlib_conv", latent_dim=10, in_channels=1)
    assert sum(p.numel() for p in model.parameters()) == 690_517
    assert sum(p.numel() for p in create_model("vae", architecture="locatello").parameters()) == 764_245


def test_dlib_conv_layers_follow_the_code():
    model = create_model("vae", architecture="dlib_conv")
    convs = [m for m in model.encoder if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [4, 4, 2, 2]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert [c.padding[0] for c in convs] == [1, 1, 0, 0]  # TF "same" at sides 64, 32, 16, 8
    assert not any(isinstance(m, nn.ZeroPad2d) for m in model.encoder)  # every split is even here
    deconvs = [m for m in model.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert [(d.kernel_size[0], d.stride[0], d.padding[0]) for d in deconvs] == [(4, 2, 1)] * 4
    assert [d.out_channels for d in deconvs] == [64, 32, 32, 1]
    h, sides = torch.rand(2, 1, 64, 64), []
    for layer in model.encoder:
        h = layer(h)
        if isinstance(layer, nn.Conv2d):
            sides.append(h.shape[-1])
    assert sides == [32, 16, 8, 4] and h.shape == (2, 20)
    # ReLU after each hidden layer, none on the heads or the logits
    assert isinstance(model.encoder[-2], nn.ReLU) and isinstance(model.decoder[-1], nn.ConvTranspose2d)
    assert model(torch.rand(2, 1, 64, 64), noise=torch.zeros(2, 10)).logits.shape == (2, 1, 64, 64)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [(64, 4, 2, (1, 1)), (16, 2, 2, (0, 0)), (5, 2, 2, (0, 1)), (6, 3, 2, (0, 1)), (7, 3, 2, (1, 1)),
     (64, 1, 2, (0, 0)), (4, 4, 1, (1, 2))],
)  # fmt: skip
def test_tf_same_padding_puts_the_odd_pixel_after(size, kernel, stride, pads):
    assert tf_same_padding(size, kernel, stride) == pads


def test_tf_same_conv_pads_bottom_right_when_uneven():
    """Side 5, 2x2 stride 2: TF's windows are [0,1], [2,3], [4, pad].

    With a kernel of ones the outputs are those windows' sums.
    """
    layers = nn.Sequential(*tf_same_conv(1, 1, 2, 2, size=5))
    assert isinstance(layers[0], nn.ZeroPad2d)
    with torch.no_grad():
        layers[1].weight.fill_(1.0)
        layers[1].bias.zero_()
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    rows = [[0, 1], [2, 3], [4]]
    expected = torch.tensor(
        [[sum(x[0, 0, r, c].sum() for r in rr for c in cc) for cc in rows] for rr in rows]
    )
    torch.testing.assert_close(layers(x)[0, 0], expected)
    with pytest.raises(ValueError, match="uneven"):
        tf_same_deconv(1, 1, 3, 2, size=4)  # crop (0, 1)
    assert tf_same_deconv(1, 1, 4, 2, size=4)(torch.rand(1, 1, 4, 4)).shape == (1, 1, 8, 8)


# -- initialisation ---------------------------------------------------------------


def test_torch_init_is_the_default_and_draws_nothing():
    torch.manual_seed(5)
    a = create_model("factor_vae", architecture="locatello")
    torch.manual_seed(5)
    b = create_model("factor_vae", architecture="locatello", init="torch")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.config.init == "torch"


def test_tf_init_is_glorot_uniform_with_zero_biases():
    torch.manual_seed(0)
    model = create_model("factor_vae", architecture="dlib_conv", init="tf")
    # Bounds sqrt(6 / (fan_in + fan_out)) with TF's fans, written out per layer.
    expected = {
        "encoder.0": math.sqrt(6 / (16 * 1 + 16 * 32)),  # conv kernel (4, 4, 1, 32)
        "encoder.4": math.sqrt(6 / (4 * 32 + 4 * 64)),  # conv kernel (2, 2, 32, 64)
        "encoder.9": math.sqrt(6 / (1024 + 256)),  # dense (1024, 256)
        "encoder.11.means": math.sqrt(6 / (256 + 10)),  # each head its own fan-out
        "decoder.5": math.sqrt(6 / (16 * 64 + 16 * 64)),  # deconv kernel (4, 4, 64, 64)
        "decoder.9": math.sqrt(6 / (16 * 32 + 16 * 32)),  # deconv kernel (4, 4, 32, 64): out 32, in 64
        "decoder.11": math.sqrt(6 / (16 * 1 + 16 * 32)),  # deconv kernel (4, 4, 1, 32)
        "discriminator.0": math.sqrt(6 / (10 + 1000)),
        "discriminator.2": math.sqrt(6 / (1000 + 1000)),
        "discriminator.12": math.sqrt(6 / (1000 + 2)),
    }
    layers = dict(model.named_modules())
    for name, limit in expected.items():
        assert glorot_limit(layers[name]) == pytest.approx(limit, rel=1e-12), name
    for name, layer in layers.items():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            w, limit = layer.weight, glorot_limit(layer)
            assert w.abs().max() <= limit and w.abs().max() > 0.9 * limit, name
            assert torch.equal(layer.bias, torch.zeros_like(layer.bias)), name
            if w.numel() > 100_000:  # uniform(-l, l): variance l^2 / 3
                assert w.var().item() == pytest.approx(limit**2 / 3, rel=0.02), name
    torch.manual_seed(0)
    again = create_model("factor_vae", architecture="dlib_conv", init="tf")
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), again.state_dict().values()))


def test_unknown_init_is_refused_listing_the_known():
    with pytest.raises(ConfigError, match="init 'xavier' is unknown; known: tf, torch"):
        create_model("vae", init="xavier")


# -- beta-TCVAE estimators ----------------------------------------------------------

_B, _D, _N = 4, 3, 10
_RNG = np.random.default_rng(0)
_Z, _MEAN = _RNG.normal(size=(_B, _D)), _RNG.normal(size=(_B, _D))
_LOGVAR = _RNG.normal(size=(_B, _D)) * 0.3


def _hand_weights(name):
    """The (B, B) weights for B = 4, N = 10, written out (row i: the sample from batch item i)."""
    n, m = _N, _B - 1
    s = (n - m) / (n * m)  # stratum weight
    return {
        "mws": np.full((4, 4), 1 / 4),
        "dlib": np.ones((4, 4)),  # no normalisation
        "mss": np.array([[1 / n, s, 1 / m, 1 / m], [1 / m, 1 / n, s, 1 / m],
                         [1 / m, 1 / m, 1 / n, s], [s, 1 / m, 1 / m, 1 / n]]),
        # Chen's code: 1/N in column 0, s in column 1, then entry (M - 1, 0) = (2, 0) set to s
        "chen_mss": np.array([[1 / n, s, 1 / m, 1 / m], [1 / n, s, 1 / m, 1 / m],
                              [s, s, 1 / m, 1 / m], [1 / n, s, 1 / m, 1 / m]]),
    }[name]  # fmt: skip


@pytest.mark.parametrize("name", sorted(TC_ESTIMATORS))
def test_tc_estimators_against_a_brute_force_sum(name):
    w = _hand_weights(name)
    tc = 0.0
    for i in range(_B):
        dens = [[math.exp(-0.5 * ((_Z[i, d] - _MEAN[j, d]) ** 2 / math.exp(_LOGVAR[j, d]) + _LOGVAR[j, d]
                 + math.log(2 * math.pi))) for d in range(_D)] for j in range(_B)]  # fmt: skip
        q_joint = sum(w[i, j] * math.prod(dens[j]) for j in range(_B))
        q_marginals = math.prod(sum(w[i, j] * dens[j][d] for j in range(_B)) for d in range(_D))
        tc += (math.log(q_joint) - math.log(q_marginals)) / _B
    t = [torch.tensor(a) for a in (_Z, _MEAN, _LOGVAR)]
    log_qz, log_prod = log_aggregate_posterior(*t, dataset_size=_N, estimator=name)
    assert (log_qz - log_prod).mean().item() == pytest.approx(
        tc, rel=1e-6, abs=1e-6
    )  # MSS weights are float32
    if name in ("mss", "chen_mss"):
        w_lib = {"mss": mss_log_importance_weights, "chen_mss": chen_mss_log_importance_weights}[name]
        np.testing.assert_allclose(w_lib(_B, _N).exp().numpy(), w, rtol=1e-6)


def _dlib_reference(z, mean, logvar, beta):
    """disentanglement_lib's BetaTCVAE.regularizer in numpy: mean analytic KL + (beta - 1) * TC.

    TC = mean_j [logsumexp_i sum_l log q(z_jl|x_i) - sum_l logsumexp_i log q(z_jl|x_i)].
    """
    log_q = -0.5 * ((z[:, None] - mean[None]) ** 2 * np.exp(-logvar[None]) + logvar[None] + np.log(2 * np.pi))

    def lse(a, axis):
        top = a.max(axis=axis, keepdims=True)
        return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)

    tc = np.mean(lse(log_q.sum(axis=2), axis=1) - lse(log_q, axis=1).sum(axis=1))
    kl = np.mean(0.5 * np.sum(mean**2 + np.exp(logvar) - logvar - 1, axis=1))
    return kl + (beta - 1) * tc, tc


def _terms(z, mean, logvar):
    z, mean, logvar = (torch.tensor(a) for a in (z, mean, logvar))
    kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1).sum(1)
    return Terms(kl=kl, mean=mean, logvar=logvar, z=z, step=0)


def test_dlib_estimator_is_dlibs_formula():
    model = create_model("beta_tcvae", beta=6.0, estimator="dlib", dataset_size=1000).double()
    regularizer, parts = model.regularizer(_terms(_Z, _MEAN, _LOGVAR))
    expected, expected_tc = _dlib_reference(_Z, _MEAN, _LOGVAR, 6.0)
    assert regularizer.item() == pytest.approx(expected, rel=1e-12)
    assert parts["tc"].item() == pytest.approx(expected_tc, rel=1e-12)


def test_dlib_and_mws_differ_by_beta_minus_one_d_minus_one_log_b():
    rng = np.random.default_rng(1)
    b, d, beta = 16, 10, 6.0
    z, mean, logvar = rng.normal(size=(b, d)), rng.normal(size=(b, d)), rng.normal(size=(b, d)) * 0.3
    terms = _terms(z, mean, logvar)
    dlib = create_model("beta_tcvae", beta=beta, estimator="dlib", dataset_size=1000).double()
    mws = create_model("beta_tcvae", beta=beta, estimator="mws", dataset_size=1000).double()
    (r_dlib, p_dlib), (r_mws, p_mws) = dlib.regularizer(terms), mws.regularizer(terms)
    offset = (d - 1) * math.log(b)  # (the MWS log-weights -log B are float32: agreement to ~1e-7)
    assert (p_mws["tc"] - p_dlib["tc"]).item() == pytest.approx(offset, rel=1e-7)
    mc_kl = p_mws["mi"] + p_mws["tc"] + p_mws["dw_kl"]  # Chen's eq. 4 with alpha = gamma = 1
    analytic_kl = terms.kl.mean()
    diff = (r_mws - mc_kl) - (r_dlib - analytic_kl)
    assert diff.item() == pytest.approx((beta - 1) * offset, rel=1e-7)


def test_dlib_estimator_refuses_alpha_or_gamma():
    with pytest.raises(ConfigError, match="alpha = gamma = 1"):
        create_model("beta_tcvae", estimator="dlib", alpha=2.0)
    with pytest.raises(ConfigError, match="estimator must be one of mws, mss, chen_mss, dlib"):
        create_model("beta_tcvae", estimator="chen_mws")


# -- MSS: our matrix vs Chen et al.'s code -----------------------------------------------


def test_chens_mss_matrix_misplaces_the_own_weight():
    """B = 64: Chen's 1/N sits on the diagonal only in row 0; ours in every row.

    With well-separated posteriors (q(z_i) = q(z_i|x_i) / N exactly, other posteriors ~ 0) the
    estimate q_hat(z_i) / q(z_i) is N * w_ii: 1 for ours, about 3.8 on average for Chen's at N = 243.
    """
    b, n = 64, 243
    ours = mss_log_importance_weights(b, n).double().exp()
    chen = chen_mss_log_importance_weights(b, n).double().exp()
    own_is_1_over_n = lambda w: (w.diagonal() - 1 / n).abs() < 1e-9  # noqa: E731
    assert own_is_1_over_n(ours).all()
    assert own_is_1_over_n(chen).sum() == 1 and own_is_1_over_n(chen)[0]  # 63 of 64 rows misplace it
    assert ((chen[:, 0] - 1 / n).abs() < 1e-9).sum() == 63  # column 0 instead (row M - 1 overwritten)
    ratio = lambda w: (n * w.diagonal()).mean().item()  # noqa: E731
    assert ratio(ours) == pytest.approx(1.0, rel=1e-6)
    assert ratio(chen) == pytest.approx(3.797, abs=1e-3)
    # The same through the estimator itself: the sample at its own posterior's mean, neighbours 100 sd away.
    mean = torch.arange(b, dtype=torch.float64)[:, None] * 100.0
    logvar = torch.zeros_like(mean)
    q_exact = gaussian_log_density(mean, mean, logvar).sum(1) - math.log(n)  # (B,)
    for name, expected in (("mss", 1.0), ("chen_mss", 3.797)):
        log_qz, _ = log_aggregate_posterior(mean, mean, logvar, dataset_size=n, estimator=name)
        assert (log_qz - q_exact).exp().mean().item() == pytest.approx(expected, abs=1e-3)


def test_our_mss_is_unbiased_for_every_sample():
    """Our MSS estimate of q(z) is unbiased over batches, whatever z.

    E over batches (others drawn uniformly from the rest) of q_hat(z) = w_ii q(z|x_i) + (sum_j!=i w_ij)
    mean_{n != i} q(z|x_n) equals q(z) exactly: w_ii = 1/N and the rest sums to (N-1)/N.
    """
    b, n = 64, 243
    w = mss_log_importance_weights(b, n).double().exp()
    torch.testing.assert_close(w.diagonal(), torch.full((b,), 1 / n, dtype=torch.float64))
    torch.testing.assert_close(w.sum(1) - w.diagonal(), torch.full((b,), (n - 1) / n, dtype=torch.float64))
    chen = chen_mss_log_importance_weights(b, n).double().exp()
    assert (chen.diagonal()[2:] == chen[2, 2]).all() and chen[2, 2] == pytest.approx(1 / (b - 1))


# -- FactorVAE -----------------------------------------------------------------------


def test_discriminator_clip_options():
    logits = torch.tensor([[20.0, -20.0], [0.3, -0.1]], requires_grad=True)  # row 0: p ~ 1 - 4e-18
    exact = discriminator_loss(logits, logits.flip(1), "none")
    clipped = discriminator_loss(logits, logits.flip(1), "dlib")
    p = F.softmax(logits.detach(), 1)
    by_hand = -0.5 * (math.log(1 - 1e-6) + math.log(p[1, 0]))  # both halves equal: mean log clip(p0)
    assert clipped.item() == pytest.approx(by_hand, rel=1e-6)
    assert exact.item() < clipped.item()
    (grad,) = torch.autograd.grad(clipped, logits)
    assert torch.equal(grad[0], torch.zeros(2))  # a clipped probability passes no gradient, as in TF
    with pytest.raises(ConfigError, match="discriminator_clip must be one of none, dlib"):
        create_model("factor_vae", discriminator_clip="tf")
    model = create_model("factor_vae", discriminator_clip="dlib", architecture="burgess")
    assert model.make_auxiliary_optimizer().defaults["betas"] == (0.5, 0.9)
