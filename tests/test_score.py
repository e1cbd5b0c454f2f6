"""`vaebench score`: known answers on dSprites, the runner's own numbers, the records, and bad input.

The thresholds come from the metrics' definitions, not from tuning:

* MIG (disentanglement_lib's: 20-bin histogram of each code, plug-in mutual information,
  normalised by the factor's entropy) of the factors themselves. The histogram merges values:
  orientation's 40 values fall two to a bin, posX/posY's 32 values one or two to a bin, so a
  perfect code keeps ``H(bins(v)) / H(v)`` of each factor (1, 1, 0.812, 0.85, 0.85 on dSprites:
  0.902 on average, ``_perfect_mig`` computes it). From that the gap subtracts the second-largest
  MI, which for independent codes is the plug-in estimator's bias ``(B_z - 1)(B_v - 1) / (2n)``
  (Miller-Madow; ``_independent_mig_bias``): 0.031 at the fast settings' n = 2000, so a perfect
  code scores 0.871, within sampling noise (0.015).
* DCI disentanglement is 1 for a diagonal importance matrix. The boosted trees (500 training points)
  put some importance on independent codes by chance: little on integer-valued factors, which offer
  few split points (>= 0.99; 0.9993 measured), more once noise makes every code continuous. A code
  leaking a share e of its importance evenly to the other 4 factors loses about
  e log(4 / e) / log 5 of it: >= 0.9 allows e = 3% (0.963 measured).
* The FactorVAE score of the factors is exactly 1: with one factor fixed its code has variance 0,
  always the smallest. Of codes independent of the factors it is chance, 1 / n_factors = 0.2, within
  4 standard deviations of a binomial over the 250 evaluation votes (0.1).
* Constant codes have zero entropy (MIG 0), no importance (DCI 0) and no active dimension (FactorVAE 0).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from benchmarks.cli import app
from benchmarks.datasets import load_dataset
from benchmarks.score import ScoreError, load_representation, score_representation

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
FAST = dict(settings="fast")


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture(scope="module")
def dsprites():
    return load_dataset("dsprites")


@pytest.fixture(scope="module")
def factors(dsprites):
    return dsprites.grid.all_factors().astype(np.float64)


def _scores(codes, dataset="dsprites", metrics=("mig", "dci", "factor_vae"), **options):
    return score_representation(load_representation(codes), dataset, metrics=list(metrics), **FAST, **options)


def _perfect_mig(factor_sizes, n_bins=20):
    """Mean over factors of H(histogram bins of the factor's values) / H(factor), uniform factors."""
    from metrics import histogram_discretize

    shares = []
    for k in factor_sizes:
        _, counts = np.unique(
            histogram_discretize(np.arange(k, dtype=float)[:, None], n_bins), return_counts=True
        )
        p = counts / k
        shares.append(float(-(p * np.log(p)).sum() / np.log(k)))
    return float(np.mean(shares))


def _independent_mig_bias(factor_sizes, n, n_bins=20):
    """Mean over factors of the largest expected plug-in MI of another factor's code, / H(factor)."""
    occupied = [min(k, n_bins) for k in factor_sizes]  # a code with k values fills at most k bins
    bias = []
    for i, k in enumerate(factor_sizes):
        worst = max((occupied[j] - 1) * (k - 1) for j in range(len(factor_sizes)) if j != i)
        bias.append(worst / (2 * n) / np.log(k))
    return float(np.mean(bias))


def test_the_perfect_mig_follows_from_the_definition():
    assert _perfect_mig((3, 6, 40, 32, 32)) == pytest.approx(
        (1 + 1 + np.log(20) / np.log(40) + 0.85 + 0.85) / 5
    )


def test_the_factors_score_near_one(dsprites, factors):
    from metrics import get_metric

    n = get_metric("mig").settings("fast")["n_train"]
    expected = _perfect_mig(dsprites.factor_sizes) - _independent_mig_bias(dsprites.factor_sizes, n)
    noisy = factors + 0.01 * np.random.RandomState(0).standard_normal(factors.shape)
    for codes, dci in ((factors, 0.99), (noisy, 0.9)):
        scores = _scores(codes).metrics
        assert scores["mig"] == pytest.approx(expected, abs=0.015)
        assert scores["dci_disentanglement"] >= dci
        assert scores["factor_vae_eval_accuracy"] == 1.0


def test_constant_and_random_codes_score_near_zero_and_chance(dsprites, factors):
    constant = _scores(np.zeros((len(factors), 5))).metrics
    assert constant["mig"] == 0.0
    assert abs(constant["dci_disentanglement"]) < 1e-9
    assert constant["factor_vae_eval_accuracy"] == 0.0
    rng = np.random.RandomState(0)
    random = _scores(rng.standard_normal((len(factors), 10))).metrics
    # MIG <= the largest MI, whose plug-in bias for a 20-bin code independent of a K-valued factor
    # is 19 (K - 1) / (2n) nats (n = 2000 at the fast settings): 0.026 of H(factor) on average.
    bias = np.mean([19 * (k - 1) / (2 * 2000) / np.log(k) for k in dsprites.factor_sizes])
    assert 0 <= random["mig"] < bias
    assert random["dci_disentanglement"] < 0.05
    chance = 1 / dsprites.num_factors
    assert abs(random["factor_vae_eval_accuracy"] - chance) < 4 * np.sqrt(chance * (1 - chance) / 250)


# -- the runner's numbers ------------------------------------------------------------------------------


TOY_METRICS = ["mig", "sap", "dci", "factor_vae", "mig_chen", "mig@sampled"]


class _Encoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.encode(x)


@pytest.fixture(scope="module")
def toy_model():
    from vae_zoo import get_model

    torch.manual_seed(0)
    cls = get_model("vae")
    return cls(cls.make_config(latent_dim=4, architecture="burgess")).eval()


def _runner_scores(model, metrics):
    from benchmarks.runner.evaluate import evaluate_run
    from benchmarks.runner.spec import RunSpec, RunTraining
    from metrics import get_metric

    spec = RunSpec(
        suite="t",
        dataset="toy_squares",
        model="vae",
        model_config={"latent_dim": 4, "architecture": "burgess"},
        seed=0,
        training=RunTraining(1, 8, "adam", 1e-3, "fp32", 1, 1),
        metrics={m: get_metric(m.partition("@")[0]).settings("fast") for m in metrics},
    )
    return evaluate_run(spec, model, load_dataset("toy_squares"), torch.device("cpu")).metrics


def test_torchscript_gives_the_runners_scores_exactly_and_a_codes_file_to_rounding(toy_model, tmp_path):
    from benchmarks.datasets import to_float

    expected = _runner_scores(toy_model, TOY_METRICS)
    path = tmp_path / "encoder.pt"
    torch.jit.trace(_Encoder(toy_model), torch.rand(2, 1, 64, 64)).save(str(path))
    scripted = _scores(str(path), "toy_squares", TOY_METRICS)
    assert scripted.metrics == expected

    dataset = load_dataset("toy_squares")
    with torch.no_grad():
        mean, logvar = toy_model.encode(
            to_float(torch.from_numpy(dataset.images_at(np.arange(len(dataset)))))
        )
    np.savez(tmp_path / "codes.npz", mean=mean.numpy(), logvar=logvar.numpy())
    # The codes were encoded in one batch of 256, the evaluation encodes lazily in the batches its
    # metrics ask for: a convolution's last bits can depend on the batch (measured: 1e-12 on
    # mig_chen's 1.6e-7 here), so the codes file agrees to rounding, the TorchScript file exactly.
    from_codes = _scores(str(tmp_path / "codes.npz"), "toy_squares", TOY_METRICS).metrics
    assert from_codes == pytest.approx(expected, rel=1e-9, abs=1e-11)
    np.save(tmp_path / "codes.npy", mean.numpy())  # codes only: every metric but the posterior ones
    plain = [m for m in TOY_METRICS if m not in ("mig_chen", "mig@sampled")]
    codes_only = _scores(str(tmp_path / "codes.npy"), "toy_squares", plain).metrics
    assert codes_only == pytest.approx(
        {k: v for k, v in expected.items() if k != "mig_chen" and not k.startswith("sampled_")},
        rel=1e-9,
        abs=1e-11,
    )


def _projection(images):
    weights = np.random.RandomState(0).standard_normal((64 * 64, 6)).astype(np.float32)
    return images.reshape(len(images), -1) @ weights


def _projection_channels_last(images):
    assert images.shape[-1] == 1
    return _projection(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def test_both_layouts_give_identical_scores():
    first = load_representation(_projection)
    last = load_representation(_projection_channels_last, layout="channels_last")
    metrics = ["mig", "sap", "factor_vae"]
    assert first.identity["layout"] == "channels_first"
    a = score_representation(first, "toy_squares", metrics=metrics, **FAST).metrics
    b = score_representation(last, "toy_squares", metrics=metrics, **FAST).metrics
    assert a == b and set(a) >= {"mig", "sap"}


def test_a_declared_layout_is_honoured():
    def encode(images):
        assert images.shape[1:] == (64, 64, 1)
        return images.reshape(len(images), -1)[:, :8]

    encode.layout = "channels_last"
    assert load_representation(encode).identity["layout"] == "channels_last"


# -- records, the CLI and the report -------------------------------------------------------------------


ENCODER_FILE = """
import numpy as np

_W = np.random.RandomState(0).standard_normal((64 * 64, 6)).astype(np.float32)


def encode(images):
    return images.reshape(len(images), -1) @ _W


def short(images):
    return encode(images)[:-1]


def noisy(images):
    return encode(images) + np.random.standard_normal((len(images), 6))


def nan(images):
    codes = encode(images)
    codes[0, 0] = np.nan
    return codes
"""


@pytest.fixture
def encoder_file(tmp_path):
    path = tmp_path / "my_encoder.py"
    path.write_text(ENCODER_FILE)
    return path


def test_score_writes_an_external_record_beside_the_zoo(encoder_file, factors, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(ROOT / "results" / "runs" / "quick", out / "runs" / "quick")
    zoo = len(list((out / "runs" / "quick").glob("*.json")))
    np.save(tmp_path / "factors.npy", factors.astype(np.float32))
    args = ("--dataset", "dsprites", "--suite", "quick", "--metrics", "mig,sap", "--out", out)
    code, output = invoke("score", tmp_path / "factors.npy", *args, "--name", "factors")
    assert code == 0, output
    code, output = invoke("score", f"{encoder_file}:encode", *args, "--name", "projection")
    assert code == 0, output
    records = {p.stem: json.loads(p.read_text()) for p in (out / "runs" / "quick").glob("external-*.json")}
    assert len(records) == 2
    for record in records.values():
        assert record["kind"] == "external" and record["status"] == "ok"
        assert record["spec"]["seed"] is None and "training" not in record["spec"]
        assert record["curve"] == {} and record["final"] == {} and "train_seconds" not in record["timing"]
        assert record["provenance"]["dataset"]["cache_content_hash"]
        assert (
            record["spec"]["metrics"]["mig"]
            == json.loads(next((out / "runs" / "quick").glob("vae-*.json")).read_text())["spec"]["metrics"][
                "mig"
            ]
        )
    by_model = {r["spec"]["model"]: r for r in records.values()}
    assert by_model["factors"]["spec"]["encoder"]["kind"] == "codes"
    assert by_model["projection"]["spec"]["encoder"] == {
        "kind": "callable",
        "source": "my_encoder.py:encode",
        "label": "projection",
        "layout": "channels_first",
    }
    before = {p: p.stat().st_mtime_ns for p in (out / "runs" / "quick").glob("external-*.json")}
    code, output = invoke("score", f"{encoder_file}:encode", *args, "--name", "projection")
    assert code == 0 and "already recorded" in output
    assert {p: p.stat().st_mtime_ns for p in before} == before
    code, output = invoke("score", f"{encoder_file}:encode", *args, "--name", "projection", "--force")
    assert code == 0 and "wrote" in output

    for command in ("table", "export", "analyze"):
        code, output = invoke(command, "--out", out, "--suite", "quick")
        assert code == 0, (command, output)
    table = (out / "tables" / "quick.md").read_text()
    assert "| factors |" in table and "| projection |" in table
    assert f"{zoo + 2} records" in table
    from benchmarks.report import load_results

    frame = load_results(out, "quick")
    external = frame[frame["seed"].isna()]
    assert set(external["model"]) == {"factors", "projection"}
    assert external["timing.train_seconds"].isna().all() and external["final.kl"].isna().all()
    assert "representations trained elsewhere" in (out / "analysis" / "quick" / "summary.md").read_text()


def test_a_trained_record_is_written_as_before(tmp_path):
    from benchmarks.runner.records import read_record

    path = next((ROOT / "results" / "runs" / "quick").glob("*.json"))
    record = read_record(path)
    assert record.kind == "trained" and record.to_json() == path.read_text()


def test_the_python_api(factors, tmp_path):
    import vaebench

    scores = vaebench.score(factors, dataset="dsprites", metrics=["mig"], out=tmp_path)
    assert scores["mig"] > 0.85
    assert len(list((tmp_path / "runs" / "external").glob("external-*.json"))) == 1
    assert vaebench.score(factors, dataset="dsprites", metrics=["mig"], out=tmp_path) == scores


# -- bad input: exit 2, a message, no record -------------------------------------------------------------


def _bad_codes(tmp_path, n):
    good = np.zeros((n, 5), np.float32)
    nan = good.copy()
    nan[7, 2] = np.nan
    return {
        "shape": (np.zeros(n, np.float32), "has shape (737280,); codes must be 2-D"),
        "dtype": (np.zeros((n, 5), np.complex64), "has dtype complex64; codes must be real numbers"),
        "length": (np.zeros((1000, 5), np.float32), "has 1000 rows but dsprites has 737280 observations"),
        "nan": (nan, "holds 1 NaN or infinite value(s) (first at row 7)"),
    }


def test_bad_codes_files_exit_2_before_scoring(tmp_path, dsprites):
    out = tmp_path / "out"
    for name, (array, message) in _bad_codes(tmp_path, len(dsprites)).items():
        path = tmp_path / f"{name}.npy"
        np.save(path, array)
        code, output = invoke("score", path, "--dataset", "dsprites", "--metrics", "mig", "--out", out)
        assert code == 2 and message in output, (name, output)
    np.save(tmp_path / "codes.npy", np.zeros((len(dsprites), 5), np.float32))
    code, output = invoke("score", tmp_path / "codes.npy", "--dataset", "noisy_dsprites", "--out", out)
    assert code == 2 and "random given the factors" in output
    code, output = invoke(
        "score", tmp_path / "codes.npy", "--dataset", "dsprites", "--metrics", "mig,mig_chen"
    )
    assert code == 2 and "mig_chen: needs the posterior (mean, logvar)" in output
    code, output = invoke("score", tmp_path / "codes.npy", "--dataset", "dsprites", "--metrics", "udr_lasso")
    assert code == 2 and "vaebench udr" in output
    code, output = invoke("score", tmp_path / "codes.npy", "--dataset", "dsprites", "--settings", "study")
    assert code == 2 and "conflicts with suite 'quick'" in output
    code, output = invoke("score", tmp_path / "codes.npy", "--dataset", "nodata", "--metrics", "mig")
    assert code == 2 and "nodata" in output
    assert not out.exists()


def test_bad_encoders_exit_2_before_scoring(tmp_path, encoder_file, toy_model):
    out = tmp_path / "out"
    cases = {
        "short": "returned 63 rows for 64 observations",
        "noisy": "is not deterministic: the same 64 observations encoded twice",
        "nan": "holds 1 NaN or infinite value(s)",
    }
    for function, message in cases.items():
        code, output = invoke("score", f"{encoder_file}:{function}", "--dataset", "dsprites", "--out", out)
        assert code == 2 and message.replace("returned 63 rows", "has 63 rows") in output, (function, output)
    pickled = tmp_path / "pickled.pt"
    torch.save(toy_model, pickled)
    code, output = invoke("score", pickled, "--dataset", "dsprites", "--out", out)
    assert code == 2 and "is not a TorchScript file" in output and "never unpickles" in output
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    code, output = invoke("score", text, "--dataset", "dsprites", "--out", out)
    assert code == 2 and "is not a TorchScript file" in output
    code, output = invoke("score", f"{encoder_file}:missing", "--dataset", "dsprites", "--out", out)
    assert code == 2 and "has no 'missing'" in output
    assert not out.exists()


def test_a_codes_only_suite_leaves_the_posterior_metrics_out_and_says_why(factors, tmp_path):
    smoke = (ROOT / "benchmarks" / "suites" / "smoke.toml").read_text()
    suite = tmp_path / "two.toml"
    suite.write_text(
        smoke.split("\nnames = ")[0].replace('"smoke"', '"two"') + '\nnames = ["mig", "mig_chen"]\n'
    )
    result = score_representation(load_representation(factors), "dsprites", suite=str(suite), out=tmp_path)
    assert set(result.metrics) == {"mig"} and list(result.left_out) == ["mig_chen"]
    assert result.path.parent == tmp_path / "runs" / "two"
    assert result.record.metric_warnings["mig_chen"][0].startswith("not scored: needs the posterior")
    with pytest.raises(ScoreError, match="mig_chen: needs the posterior"):
        score_representation(load_representation(factors), "dsprites", metrics=["mig_chen"])


@pytest.mark.slow  # 5 s: three datasets scored
def test_the_datasets_metric_settings_apply_as_for_the_runner(dsprites, factors):
    """Chen et al.'s MIG leaves dSprites' shape out (the metric's dataset settings), as the runner does."""
    from benchmarks.runner.evaluate import CachedEncoder, IndexSampler
    from metrics import evaluate_metric

    mean = factors / np.asarray(dsprites.factor_sizes)
    logvar = np.full_like(mean, np.log(0.01))
    scored = _scores((mean, logvar), metrics=["mig_chen"]).metrics["mig_chen"]
    lookup = CachedEncoder.precomputed(dsprites, mean, logvar)

    def direct(**overrides):
        return evaluate_metric(
            "mig_chen",
            IndexSampler(dsprites),
            lookup.mean_of,
            np.random.RandomState(0),
            settings="fast",
            encode_posterior=lookup.posterior_of,
            **overrides,
        )["mig_chen"]

    from metrics import get_metric

    assert get_metric("mig_chen").dataset_settings["dsprites"] == {"exclude_factors": (0,)}
    assert scored == direct(exclude_factors=(0,)) == direct(dataset="dsprites") != direct(exclude_factors=())
