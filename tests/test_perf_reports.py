"""The perf scripts' reports render from the machine facts the scripts collect today.

A report is written after minutes of timing; a key the renderer expects and the machine facts no
longer hold (``provenance.machine()`` says ``scikit_learn``) lost a whole run of metrics_speed.py.
The committed results carry the old facts, so each is rendered here with today's.
"""

import json
from pathlib import Path

import pytest

from tools.perf import metrics_speed

RESULTS = Path(__file__).parents[1] / "results" / "perf"


@pytest.mark.parametrize(
    ("stem", "render"),
    [("metrics_cpu", metrics_speed.markdown), ("metrics_extra_cpu", metrics_speed.extra_markdown)],
)
def test_metric_speed_reports_render_with_todays_machine_facts(stem, render):
    info = json.loads((RESULTS / f"{stem}.json").read_text())
    info["machine"] = metrics_speed.machine()
    text = render(info)
    assert f"scikit-learn {info['machine']['scikit_learn']}" in text
    assert info["machine"]["cpu_model"] in text


def test_eval_cost_report_renders_whole_and_skipped():
    from tools.perf import eval_cost

    info = json.loads((RESULTS / "eval_cost_cpu.json").read_text())
    whole = eval_cost.markdown(info)
    assert "## Ours, whole" in whole and "equal to the bit" in whole
    assert "against ours measured whole" in whole and "x the measurement." in whole
    # --skip-full with --record: the fraction's run stands in, and nothing is compared to the record
    info["full"] = info["paired"]["ours"][0]
    info["full_skipped"] = True
    del info["against_record"]
    skipped = eval_cost.markdown(info)
    assert "## Ours, whole" not in skipped
    assert "(--skip-full: no whole evaluation)" in skipped
    assert "Its scores were not compared" in skipped
    assert "against no whole evaluation of ours" in skipped
    assert "not comparable with the run above" in skipped and "x the measurement" not in skipped


def test_memory_report_names_its_command_and_a_cache_its_prepare_built():
    from benchmarks.runner import provenance
    from tools.perf import memory

    info = json.loads((RESULTS / "memory_cpu.json").read_text())
    info["machine"] = {**provenance.machine(), "load_before": "0.5", "load_after": "1.5"}  # as main() does
    info["argv"] = ["--datasets", "dsprites", "--out", "/tmp/x"]
    for summary in info["summary"].values():
        summary["cache_built_by_prepare"] = False
    text = memory.markdown(info)
    assert "From `python -m tools.perf.memory --datasets dsprites --out /tmp/x`" in text
    assert "checks the cache (already built)." in text and "generated it first" not in text
    name = next(iter(info["summary"]))
    info["summary"][name]["cache_built_by_prepare"] = True  # its peak holds the generation: say so
    text = memory.markdown(info)
    assert f"for {name} the cache was missing and that process generated it first" in text


def test_eval_cost_times_both_encoders_through_the_runners_evaluation():
    """The dlib-style baseline and ours run through ``evaluate_timed`` (a dry run found one failing)."""
    import torch

    from benchmarks.datasets import load_dataset
    from tools.perf import eval_cost
    from vae_zoo import create_model

    dataset = load_dataset("toy_squares", progress=False)
    torch.manual_seed(0)
    model = create_model("beta_vae", architecture="dlib_conv", latent_dim=4, in_channels=1).eval()
    metrics = {"mig": {"n_train": 300, "batch_size": 16}, "mig@sampled": {"n_train": 300, "batch_size": 16}}
    cpu = torch.device("cpu")
    baseline = eval_cost.PerCallEncoder(model, dataset, cpu)
    base = eval_cost.evaluate_timed(model, dataset, cpu, eval_cost.baseline_settings(metrics), baseline)
    ours = eval_cost.evaluate_timed(
        model, dataset, cpu, metrics, eval_cost.TimedCachedEncoder(model, dataset, cpu)
    )
    # The baseline encodes every image each call hands it (both representations, 300 each, and the
    # summary sample); ours each of the 256 grid points at most once, none ahead (300 draws are
    # expected to reach 69% of the grid, under ENCODE_AHEAD_REACH).
    assert base["images_encoded"] > 2 * 300 and base["images_encoded_ahead"] == 0
    assert ours["images_encoded"] <= len(dataset) and ours["images_encoded_ahead"] == 0
    assert set(base["per_metric"]) == set(ours["per_metric"]) == set(metrics)
    assert set(base["scores"]) == set(ours["scores"])
