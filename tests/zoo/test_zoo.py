"""Known-answer tests of the ELBO core, the shared maths and every registered variant."""

import math

import pytest
import torch

import vae_zoo
from vae_zoo import ConfigError, create_model, get_model, list_models
from vae_zoo.losses import (
    covariance,
    dip_penalty,
    gaussian_kl,
    gaussian_log_density,
    log_aggregate_posterior,
    mss_log_importance_weights,
    permute_dims,
)
from vae_zoo.testing import check_model
from vae_zoo.variants.annealed_vae import capacity

SEVEN = ["annealed_vae", "beta_tcvae", "beta_vae", "dip_vae_i", "dip_vae_ii", "factor_vae", "vae"]


def test_the_seven_builtins_are_registered():
    assert set(SEVEN) <= set(list_models())
    assert list_models("beta_*") == ["beta_tcvae", "beta_vae"]


def _shipped_or_plugin(name):
    # Other test modules register deliberately broken variants (NaN losses) to test the runner.
    return not get_model(name).__module__.rsplit(".", 1)[-1].startswith("test_")


@pytest.mark.parametrize("name", [n for n in list_models() if _shipped_or_plugin(n)])
def test_every_registered_model_passes_check_model(name):
    check_model(get_model(name))


@pytest.mark.parametrize(
    ("name", "config"),
    [(n, {"architecture": "dlib_conv", "init": "tf"}) for n in SEVEN]
    + [("beta_tcvae", {"estimator": e}) for e in ("dlib", "chen_mss")]
    + [("factor_vae", {"discriminator_clip": "dlib"})],
)
def test_the_study_options_pass_check_model(name, config):
    check_model(get_model(name), **config)


@pytest.mark.parametrize("architecture", ["burgess", "locatello", "dlib_conv", "mlp"])
@pytest.mark.parametrize("channels", [1, 3])
def test_architectures_map_64x64_images(architecture, channels):
    model = create_model("vae", architecture=architecture, in_channels=channels, latent_dim=7)
    out = model(torch.rand(2, channels, 64, 64), noise=torch.zeros(2, 7))
    assert out.mean.shape == (2, 7) and out.logits.shape == (2, channels, 64, 64)


def test_locatello_layer_shapes_follow_the_paper():
    model = create_model("vae", architecture="locatello")
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)


def test_analytic_kl_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    logvar = torch.randn(3, 4, generator=gen, dtype=torch.float64) * 0.5
    z = mean + (0.5 * logvar).exp() * torch.randn(400_000, 3, 4, generator=gen, dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.float64)
    log_ratio = gaussian_log_density(z, mean, logvar) - gaussian_log_density(z, zero, zero)
    mc = log_ratio.sum(-1).mean(0)  # (3,)
    se = log_ratio.sum(-1).std(0) / math.sqrt(z.shape[0])
    analytic = gaussian_kl(mean, logvar)
    assert torch.all((mc - analytic).abs() < 4 * se + 1e-9), (mc, analytic, se)


def test_beta_vae_with_beta_one_is_exactly_the_vae():
    torch.manual_seed(0)
    vae = create_model("vae", architecture="burgess")
    beta = create_model("beta_vae", beta=1.0, architecture="burgess")
    beta.load_state_dict(vae.state_dict())
    x, noise = torch.rand(4, 1, 64, 64), torch.randn(4, 10)
    assert torch.equal(vae(x, noise=noise).loss, beta(x, noise=noise).loss)


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_beta_tcvae_decomposition_is_an_identity(estimator):
    """alpha = beta = gamma = 1: MI + TC + dwKL telescopes to E[log q(z|x) - log p(z)]."""
    torch.manual_seed(0)
    model = create_model(
        "beta_tcvae",
        alpha=1.0,
        beta=1.0,
        gamma=1.0,
        estimator=estimator,
        dataset_size=5000,
        architecture="burgess",
    ).double()
    x, noise = torch.rand(16, 1, 64, 64, dtype=torch.float64), torch.randn(16, 10, dtype=torch.float64)
    out = model(x, noise=noise)
    zero = torch.zeros((), dtype=torch.float64)
    sampled_kl = (
        gaussian_log_density(out.z, out.mean, out.logvar) - gaussian_log_density(out.z, zero, zero)
    ).sum(1)
    torch.testing.assert_close(out.regularizer, sampled_kl.mean(), rtol=0, atol=1e-10)
    torch.testing.assert_close(out.loss, out.reconstruction + sampled_kl.mean(), rtol=0, atol=1e-10)


def test_mss_weights_are_a_distribution_per_row():
    w = mss_log_importance_weights(8, 100).exp()
    torch.testing.assert_close(w.sum(1), torch.ones(8, dtype=w.dtype))
    assert torch.allclose(w.diagonal(), torch.full((8,), 0.01))


def _exact_tc(mu, sigma, n_samples, gen):
    """TC of q(z) = 1/N sum_n N(mu_n, diag sigma_n^2), by Monte Carlo with exact mixture densities."""
    n, d = mu.shape
    idx = torch.randint(n, (n_samples,), generator=gen)
    z = mu[idx] + sigma[idx] * torch.randn(n_samples, d, generator=gen, dtype=mu.dtype)
    log_p = gaussian_log_density(z[:, None, :], mu[None], 2 * sigma.log()[None])  # (S, N, D)
    log_qz = torch.logsumexp(log_p.sum(2), 1) - math.log(n)
    log_marg = (torch.logsumexp(log_p, 1) - math.log(n)).sum(1)
    return (log_qz - log_marg).mean().item()


def test_tc_estimators_converge_to_the_brute_force_total_correlation():
    """A 2-D dataset of N = 64 posteriors on a correlated line: TC is computable exactly."""
    gen = torch.Generator().manual_seed(0)
    t = torch.linspace(-2, 2, 64, dtype=torch.float64)
    mu = torch.stack([t, t + 0.3 * torch.randn(64, generator=gen, dtype=torch.float64)], 1)
    sigma = torch.full_like(mu, 0.3)
    exact = _exact_tc(mu, sigma, 200_000, gen)
    assert exact > 0.3  # strongly dependent dimensions
    estimates = {}
    for estimator in ("mws", "mss", "dlib"):
        values = []
        for _ in range(400):
            idx = torch.randperm(64, generator=gen)[:32]
            m, s = mu[idx], sigma[idx]
            z = m + s * torch.randn(32, 2, generator=gen, dtype=torch.float64)
            log_qz, log_prod = log_aggregate_posterior(
                z, m, 2 * s.log(), dataset_size=64, estimator=estimator
            )
            values.append((log_qz - log_prod).mean().item())
        estimates[estimator] = sum(values) / len(values)
    estimates["dlib"] += math.log(32)  # dlib's unnormalised TC is offset by -(D - 1) log B
    # Both estimate log q(z) from half the dataset; they are close to the exact TC and to each other.
    assert abs(estimates["mss"] - exact) < 0.05 * exact + 0.02, (estimates, exact)
    assert abs(estimates["mws"] - exact) < 0.05 * exact + 0.02, (estimates, exact)
    assert abs(estimates["dlib"] - exact) < 0.05 * exact + 0.02, (estimates, exact)
    assert abs(estimates["mws"] - estimates["mss"]) < 0.05 * exact + 0.02


def test_dip_penalty_vanishes_at_identity_and_counts_entries():
    assert dip_penalty(torch.eye(5), 3.0, 7.0) == 0
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    assert torch.isclose(dip_penalty(cov, 3.0, 7.0), torch.tensor(3.0 * 2 * 0.25 + 7.0 * 1.0))
    x = torch.randn(100_000, 3, generator=torch.Generator().manual_seed(0))
    assert dip_penalty(covariance(x), 1.0, 1.0) < 1e-3  # white data: covariance ~ I


def test_capacity_schedule_hits_its_values():
    assert capacity(0, 25.0, 100_000) == 0.0
    assert capacity(50_000, 25.0, 100_000) == 12.5
    assert capacity(100_000, 25.0, 100_000) == 25.0
    assert capacity(300_000, 25.0, 100_000) == 25.0
    model = create_model("annealed_vae", c_max=10.0, gamma=2.0, ramp_steps=100, architecture="burgess")
    x, noise = torch.rand(4, 1, 64, 64), torch.randn(4, 10)
    out = model(x, step=50, noise=noise)
    assert out.parts["capacity"] == 5.0
    torch.testing.assert_close(out.regularizer, 2.0 * (out.kl - 5.0).abs())


def test_factor_vae_permutation_keeps_every_marginal():
    z = torch.randn(50, 6, generator=torch.Generator().manual_seed(0))
    p = permute_dims(z, torch.Generator().manual_seed(1))
    assert torch.equal(p.sort(0).values, z.sort(0).values)
    assert not torch.equal(p, z)
    # the joint is broken: rows are no longer rows of z
    assert sum(any(torch.equal(row, r) for r in z) for row in p) < 5


def test_factor_vae_discriminator_is_not_trained_by_the_elbo():
    model = create_model("factor_vae", architecture="burgess")
    aux = model.make_auxiliary_optimizer()
    aux_ids = {id(p) for g in aux.param_groups for p in g["params"]}
    assert aux_ids == {id(p) for p in model.discriminator.parameters()}
    assert len(model.discriminator) == 13  # 6 x (Linear, LeakyReLU) + output layer


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [("beta_vae", "beta", -1.0), ("vae", "latent_dim", 0), ("factor_vae", "gamma", float("nan")),
     ("annealed_vae", "ramp_steps", 0), ("beta_tcvae", "estimator", "exact"),
     ("vae", "architecture", "resnet"), ("vae", "init", "glorot"),
     ("factor_vae", "discriminator_clip", "yes"), ("beta_tcvae", "estimator", "chen_mws")],
)  # fmt: skip
def test_invalid_hyperparameters_are_refused_naming_the_field(name, field, value):
    with pytest.raises(ConfigError, match=field):
        create_model(name, **{field: value})


def test_unknown_config_field_lists_valid_fields():
    with pytest.raises(ConfigError, match="valid fields: .*beta"):
        create_model("beta_vae", betta=2.0)


def test_unknown_model_lists_close_matches():
    with pytest.raises(LookupError, match="Did you mean 'beta_vae'"):
        create_model("beta-vae")


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="already registered"):

        @vae_zoo.register_model("beta_vae")
        class Impostor(vae_zoo.VAE):
            pass


def test_study_grids_are_those_of_locatello_et_al():
    grid = {n: get_model(n).study_grid for n in SEVEN}
    assert [g["beta"] for g in grid["beta_vae"]] == [1, 2, 4, 6, 8, 16]
    assert [g["c_max"] for g in grid["annealed_vae"]] == [5, 10, 25, 50, 75, 100]
    assert [g["gamma"] for g in grid["factor_vae"]] == [10, 20, 30, 40, 50, 100]
    assert all(g["lambda_d"] == 10 * g["lambda_od"] for g in grid["dip_vae_i"])
    assert all(g["lambda_d"] == g["lambda_od"] for g in grid["dip_vae_ii"])
    assert [g["lambda_od"] for g in grid["dip_vae_ii"]] == [1, 2, 5, 10, 20, 50]
    assert [g["beta"] for g in grid["beta_tcvae"]] == [1, 2, 4, 6, 8, 10]
    annealed = create_model("annealed_vae").config
    assert (annealed.gamma, annealed.ramp_steps) == (1000.0, 100_000)
    for name in SEVEN:
        for point in grid[name]:
            create_model(name, **point)  # every grid point is a valid config


def test_checkpoint_stores_name_config_and_weights(tmp_path):
    model = create_model("beta_vae", beta=2.0, latent_dim=5)
    path = vae_zoo.save_checkpoint(model, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["model"] == "beta_vae" and payload["config"]["beta"] == 2.0
    reloaded = vae_zoo.load_checkpoint(path)
    assert reloaded.config == model.config


def test_corrupt_checkpoint_is_reported_by_path(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(vae_zoo.CheckpointError, match="bad.pt"):
        vae_zoo.load_checkpoint(bad)
