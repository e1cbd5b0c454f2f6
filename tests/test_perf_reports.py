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
