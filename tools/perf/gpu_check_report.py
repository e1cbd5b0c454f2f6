"""The report of ``gpu_check.sh``: its stages merged into ``results/perf/train_<device>.json`` and ``.md``.

    python -m tools.perf.gpu_check_report OUT [--dry-run] [--filelock-stand-in]

Reads what the stages left under ``OUT`` (``throughput/``, ``profile/``, ``tests/``, ``quick/`` and
``logs/rc.txt``) and writes the report under ``OUT/results/perf/``: the throughput report of
``tools.perf.train_throughput`` with ``single_vs_baseline`` and ``packed_aggregate_images_per_s`` at
the top level, plus one section per other stage.
"""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from pathlib import Path

QUICK_HEADING = "## `vaebench run --suite quick`"


def throughput(out: Path, dry_run: bool) -> tuple[dict, str]:
    """The throughput stage's report and its Markdown, or a stand-in saying that it wrote nothing."""
    found = sorted((out / "throughput").glob("train_*.json"))
    if found:
        return json.loads(found[0].read_text()), found[0].with_suffix(".md").read_text()
    print("no throughput report: see logs/throughput.log")
    report = {
        "benchmark": "train_throughput",
        "device": "cpu" if dry_run else "gpu",
        "single_vs_baseline": None,
        "packed_aggregate_images_per_s": None,
        "configurations": {},
    }
    return report, "# Training throughput\n\nThe throughput stage wrote nothing; see logs/throughput.log.\n"


def stages_section(stages: list[list[str]], filelock: str) -> list[str]:
    """Each stage's exit status and wall time (``logs/rc.txt``), and which filelock ran."""
    lines = ["", "## gpu_check.sh", "", "| stage | rc | wall |", "|---|---:|---:|"]
    lines += [f"| {' | '.join((row + ['', ''])[:3])} |" for row in stages]
    return [*lines, "", f"filelock: {filelock}.", ""]


def profile_section(out: Path, report: dict) -> list[str]:
    """One packed step, profiled: the top ops and kernels by their own time."""
    profiles = sorted((out / "profile").glob("profile_*.json"))
    if not profiles:
        return []
    prof = json.loads(profiles[0].read_text())
    report["profile_packed_step"] = {k: v for k, v in prof.items() if k not in ("table", "machine")}
    lines = [
        f"## One step of a pack of {prof['pack']}, profiled ({prof['time_basis']})",
        "",
        "| op / kernel | self us | share | calls |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| `{r['name'][:90]}` | {r['self_us']:.0f} | {r['share']:.1%} | {r['calls']} |"
        for r in prof["top"][:15]
    ]
    return [*lines, ""]


def case_status(case: ET.Element) -> str:
    """A JUnit test case's outcome: passed, or failure/error/skipped with its message."""
    status = "passed"
    for child in case:
        if child.tag in ("failure", "error", "skipped"):
            status = child.tag + ": " + (child.get("message") or "")[:300]
    return status


def gpu_tests(out: Path) -> dict:
    """The outcome of tests/gpu (``junit.xml``) and the spreads they measured (``gpu_tests.jsonl``)."""
    tests: dict = {"measurements": []}
    jsonl = out / "tests" / "gpu_tests.jsonl"
    if jsonl.exists():
        tests["measurements"] = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    junit = out / "tests" / "junit.xml"
    if junit.exists():
        root = ET.parse(junit).getroot()
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        tests["summary"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        tests["cases"] = [
            {"name": case.get("name"), "seconds": float(case.get("time", 0)), "status": case_status(case)}
            for case in suite.iter("testcase")
        ]
    return tests


def tests_section(tests: dict) -> list[str]:
    """The tests/gpu section: one row per test, then the measured spreads."""
    if "summary" not in tests:
        return []
    s = tests["summary"]
    lines = [
        "## tests/gpu",
        "",
        f"{s['tests']} tests: {s['failures']} failed, {s['errors']} errors, {s['skipped']} skipped.",
        "",
        "| test | s | outcome |",
        "|---|---:|---|",
    ]
    lines += [
        f"| {c['name']} | {c['seconds']:.1f} | {c['status'].replace('|', '/')[:160]} |"
        for c in tests["cases"]
    ]
    lines += ["", "Measured (gpu_tests.jsonl):", ""]
    lines += [f"- `{json.dumps(m)[:300]}`" for m in tests["measurements"]]
    return [*lines, ""]


def quick_records(out: Path) -> list[dict]:
    """The run records the quick stage wrote under ``OUT/quick``."""
    records = []
    for path in sorted((out / "quick").glob("**/*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "timing" in data and "spec" in data:
            records.append(data)
    return records


def quick_suite(records: list[dict], stages: list[list[str]]) -> dict:
    """The quick suite's runs with their timings, the sums, and the command's wall time."""
    rows = [
        {
            "run_id": r["run_id"],
            "model": r["spec"]["model"],
            "status": r.get("status"),
            **{k: r["timing"].get(k) for k in ("train_seconds", "eval_seconds", "images_per_second")},
        }
        for r in records
    ]
    rc = {row[0]: row[1:] for row in stages}
    return {
        "runs": rows,
        "train_seconds_sum": sum(r["train_seconds"] or 0 for r in rows),
        "eval_seconds_sum": sum(r["eval_seconds"] or 0 for r in rows),
        "images_per_second_sum": sum(r["images_per_second"] or 0 for r in rows),
        "cli_wall": rc["quick"][1] if len(rc.get("quick", [])) > 1 else None,
    }


def quick_section(quick: dict) -> list[str]:
    """The quick suite section: the command's wall time, then one row per run."""
    lines = [
        QUICK_HEADING,
        "",
        f"Wall time of the command {quick['cli_wall']}; training {quick['train_seconds_sum']:.1f} s "
        f"and evaluation {quick['eval_seconds_sum']:.1f} s summed over the runs (runs of one pack "
        "share their training wall time; images/s summed over a pack is its aggregate).",
        "",
        "| run | status | train s | eval s | images/s |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['run_id']} | {r['status']} | {r['train_seconds'] or 0:.1f} | {r['eval_seconds'] or 0:.1f} | "
        f"{r['images_per_second'] or 0:.0f} |"
        for r in quick["runs"]
    ]
    return [*lines, ""]


def main(argv: list[str] | None = None) -> dict:
    """Merge the stages under ``OUT`` and write ``OUT/results/perf/train_<device>.json`` and ``.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the directory gpu_check.sh wrote its stages under")
    parser.add_argument("--dry-run", action="store_true", help="the stages ran on the CPU (--dry-run)")
    parser.add_argument("--filelock-stand-in", action="store_true", help="the fcntl stand-in ran")
    args = parser.parse_args(argv)
    out = args.out

    report, md = throughput(out, args.dry_run)
    stages = [line.split() for line in (out / "logs" / "rc.txt").read_text().splitlines() if line]
    filelock = "fcntl stand-in (filelock not installed)" if args.filelock_stand_in else "installed"
    report["gpu_check"] = {"dry_run": args.dry_run, "filelock": filelock, "stages": stages}
    sections = stages_section(stages, filelock)
    sections += profile_section(out, report)
    report["gpu_tests"] = gpu_tests(out)
    sections += tests_section(report["gpu_tests"])
    records = quick_records(out)
    if records:
        report["quick_suite"] = quick_suite(records, stages)
        sections += quick_section(report["quick_suite"])
    else:
        report["quick_suite"] = {"error": "no run records under quick/; see logs/quick.log"}
        sections += [QUICK_HEADING, "", "No run records; see logs/quick.log.", ""]

    name = f"train_{report['device']}"
    target = out / "results" / "perf"
    target.mkdir(parents=True, exist_ok=True)
    (target / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (target / f"{name}.md").write_text(md.rstrip("\n") + "\n" + "\n".join(sections) + "\n")
    print(f"wrote {target / name}.json and .md")
    print(
        f"single_vs_baseline {report.get('single_vs_baseline')}; "
        f"packed_aggregate_images_per_s {report.get('packed_aggregate_images_per_s')}"
    )
    return report


if __name__ == "__main__":
    main()
