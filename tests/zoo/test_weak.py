"""Weakly-supervised variants (Locatello et al. 2020) against disentanglement_lib's algorithm.

Every fixture case in tests/data/dlib/weak (a copy of the reference package, whose
README documents each algorithm with file:line) is fed its stored encoder outputs,
labels, noise and decoder logits; the pooled posteriors, masks, samples and loss
terms must agree at the package's tolerance (float64, rtol = atol = 1e-10).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_zoo import create_model, get_model
from vae_zoo.losses import adaptive_shared_mask, group_average, label_shared_mask, ml_average, pair_kl
from vae_zoo.testing import check_model

WEAK = Path(__file__).resolve().parents[1] / "data" / "dlib" / "weak"
#: The reference package beside the checkout, when present, may hold cases the copy lacks.
SHARED_WEAK = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "disentanglement_lib" / "weak"


def _cases(pattern: str) -> list[Path]:
    """Every fixture case's .json matching ``pattern``, the copy's first, then the reference's others."""
    found = {p.name: p for p in sorted(SHARED_WEAK.glob(pattern))} if SHARED_WEAK.is_dir() else {}
    found.update({p.name: p for p in sorted(WEAK.glob(pattern))})
    return [found[name] for name in sorted(found)]


MODEL_CASES = [p for p in _cases("*.json") if not p.stem.startswith(("dynamics__", "INDEX"))]
#: fixture prefix -> registered model
MODELS = {
    "gvae_argmax": "group_vae_argmax",
    "gvae_labels": "group_vae_labels",
    "mlvae_argmax": "mlvae_argmax",
    "mlvae_labels": "mlvae_labels",
}
TOL = {"rtol": 1e-10, "atol": 1e-10}


def _case(path: Path):
    arrays = dict(np.load(path.with_suffix(".npz")))
    meta = json.loads(path.read_text())
    return arrays, meta


def _posteriors(a) -> tuple[torch.Tensor, torch.Tensor]:
    """The stored encoder outputs of both images as (B, 2, L)."""
    mean = torch.from_numpy(np.stack([a["z_mean_1"], a["z_mean_2"]], axis=1))
    logvar = torch.from_numpy(np.stack([a["z_logvar_1"], a["z_logvar_2"]], axis=1))
    return mean, logvar


def _nchw_pair(first: np.ndarray, second: np.ndarray) -> torch.Tensor:
    """Two NHWC batches (B, H, W, C) -> one (B, 2, C, H, W) batch of pairs."""
    return torch.from_numpy(np.stack([first, second], axis=1)).permute(0, 1, 4, 2, 3)


def test_the_fixture_directory_has_every_public_case():
    assert len(MODEL_CASES) >= 9 and len(_cases("dynamics__*.json")) >= 3


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda p: p.stem)
def test_per_dimension_kl_and_masks_equal_dlib(case):
    a, _ = _case(case)
    mean, logvar = _posteriors(a)
    kl = pair_kl(mean, logvar)
    np.testing.assert_allclose(kl.numpy(), a["kl_per_point"], **TOL)
    # The adaptive mask on the stored divergences, so that rounding cannot move a value across
    # the midpoint (the fixtures' ties are exact; their random rows keep a margin of >= 2e-3).
    shared = adaptive_shared_mask(torch.from_numpy(a["kl_per_point"]), "average")
    np.testing.assert_array_equal(shared.numpy(), a["argmax_shared_mask"])
    np.testing.assert_array_equal(adaptive_shared_mask(kl, "average").numpy(), a["argmax_shared_mask"])
    labels = torch.from_numpy(a["label_index"].reshape(-1).astype(np.int64))
    np.testing.assert_array_equal(label_shared_mask(labels, mean.shape[-1]).numpy(), a["labels_shared_mask"])
    shared_mean, shared_logvar = group_average(mean, logvar)
    np.testing.assert_allclose(shared_mean.numpy(), a["gvae_new_mean"], **TOL)
    np.testing.assert_allclose(shared_logvar.numpy(), a["gvae_new_log_var"], **TOL)
    shared_mean, shared_logvar = ml_average(mean, logvar)
    np.testing.assert_allclose(shared_mean.numpy(), a["mlvae_new_mean"], **TOL)
    np.testing.assert_allclose(shared_logvar.numpy(), a["mlvae_new_log_var"], **TOL)


@pytest.mark.parametrize("prefix", sorted(MODELS))
@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda p: p.stem)
def test_pooled_posteriors_samples_and_loss_equal_dlib(case, prefix):
    a, meta = _case(case)
    mean, logvar = _posteriors(a)
    batch, latent = mean.shape[0], mean.shape[-1]
    model = create_model(MODELS[prefix], latent_dim=latent, beta=float(a["beta"])).double()
    labels = torch.from_numpy(a["label_index"].reshape(-1).astype(np.int64))
    pooled_mean, pooled_logvar = model.pool_views(mean, logvar, labels)  # (2B, L), pairs interleaved
    for view in (1, 2):
        np.testing.assert_allclose(
            pooled_mean.unflatten(0, (batch, 2))[:, view - 1].numpy(),
            a[f"{prefix}_mean_sample_{view}"],
            **TOL,
        )
        np.testing.assert_allclose(
            pooled_logvar.unflatten(0, (batch, 2))[:, view - 1].numpy(),
            a[f"{prefix}_log_var_sample_{view}"],
            **TOL,
        )
    noise = torch.from_numpy(np.stack([a["eps_1"], a["eps_2"]], axis=1)).flatten(0, 1)
    z = model.reparameterise(pooled_mean, pooled_logvar, noise)
    np.testing.assert_allclose(z.unflatten(0, (batch, 2))[:, 0].numpy(), a[f"{prefix}_z_sampled_1"], **TOL)
    np.testing.assert_allclose(z.unflatten(0, (batch, 2))[:, 1].numpy(), a[f"{prefix}_z_sampled_2"], **TOL)
    H = meta["H"]
    x = _nchw_pair(a["features"][:, :H], a["features"][:, H:]).flatten(0, 1)
    logits = _nchw_pair(a["logits_1"], a["logits_2"]).flatten(0, 1)
    out = model.assemble_loss(x, pooled_mean, pooled_logvar, z, logits)
    np.testing.assert_allclose(float(out.reconstruction), float(a["reconstruction_loss"]), **TOL)
    np.testing.assert_allclose(float(out.kl), float(a[f"{prefix}_kl_loss"]), **TOL)
    np.testing.assert_allclose(float(out.regularizer), float(a[f"{prefix}_regularizer"]), **TOL)
    np.testing.assert_allclose(float(out.loss), float(a[f"{prefix}_loss"]), **TOL)
    np.testing.assert_allclose(float(out.reconstruction + out.kl), float(a[f"{prefix}_elbo"]), **TOL)


def test_all_equal_rows_follow_the_named_option():
    kl = torch.tensor([[0.5, 0.5, 0.5], [0.0, 1.0, 2.0]])
    averaged = adaptive_shared_mask(kl, "average")
    kept = adaptive_shared_mask(kl, "keep")
    assert averaged[0].all() and not kept[0].any()  # the degenerate row: dlib on CPU vs TF 1.14 on GPU
    assert averaged[1].tolist() == kept[1].tolist() == [True, False, False]  # the midpoint 1.0 is kept
    with pytest.raises(ValueError, match="average, keep"):
        adaptive_shared_mask(kl, "nan")


def test_the_degenerate_option_is_a_recorded_config_field_and_changes_the_pooling():
    mean = torch.zeros(2, 2, 3)
    logvar = torch.zeros(2, 2, 3)
    logvar[0, 1] = 1.0  # row 0: every dimension's KL equal and non-zero
    for name in ("group_vae_argmax", "mlvae_argmax"):
        averaged = create_model(name, latent_dim=3, all_equal="average")
        kept = create_model(name, latent_dim=3, all_equal="keep")
        assert averaged.config.all_equal == "average" and kept.config.all_equal == "keep"
        mean_a, logvar_a = averaged.pool_views(mean, logvar)
        mean_k, logvar_k = kept.pool_views(mean, logvar)
        assert not torch.equal(logvar_a, logvar_k)
        assert torch.equal(logvar_k, logvar.flatten(0, 1))  # nothing pooled when kept


@pytest.mark.parametrize("name", sorted(MODELS.values()))
def test_pair_variants_pass_the_conformance_checks(name):
    check_model(get_model(name), latent_dim=10)


def test_a_pair_variant_refuses_single_images_and_missing_labels():
    model = create_model("group_vae_labels", latent_dim=4, architecture="burgess")
    with pytest.raises(ValueError, match=r"\(B, 2, C, H, W\)"):
        model(torch.zeros(3, 1, 64, 64))
    with pytest.raises(ValueError, match="changed factor"):
        model(torch.zeros(3, 2, 1, 64, 64))
