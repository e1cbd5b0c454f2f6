"""The README's results section, regenerated from a suite's run records.

    python -m benchmarks.report.readme [--out results] [--suite quick] [--readme README.md]

Rewrites the text between ``<!-- results:SUITE -->`` and ``<!-- /results:SUITE -->``
in the README with a compact table (the headline metrics and the training terms,
mean ± std over seeds where there are several, a dataset column where there are
several datasets), the protocol and timing read from the records, and, for a
suite with at least ``MIN_SEEDS`` seeds in every configuration, the figures of
metric agreement and variance shares that ``vaebench analyze`` wrote for it: every
number there comes from the records, as in ``vaebench table``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from benchmarks.report.analysis_stats import MIN_SEEDS
from benchmarks.report.presentation import TRAINING_TERMS, headline_keys, metric_header, stats_text
from benchmarks.report.runs_frame import metric_keys, read_runs, summary_stats, value_column
from benchmarks.report.table import study_protocol_note
from vaebench.errors import UserError

__all__ = ["results_section", "update_readme"]

# The analyses shown in the README, in this order: (file stem, alt text).
README_ANALYSES = (
    ("agreement", "rank correlation between metrics"),
    ("variance", "share of variance explained by model, hyperparameter and seed"),
)


def results_section(out_dir: Path, suite: str) -> str:
    """Markdown: protocol, timing and one row per configuration (mean over its seeds)."""
    runs = read_runs(out_dir, suite)
    ok = runs.ok
    # The section reports the suite's training: representations scored by `vaebench score` stay in the tables.
    ok = ok[[runs.records[run_id].kind == "trained" for run_id in ok["run_id"]]]
    trained = sum(record.kind == "trained" for record in runs.records.values())
    if ok.empty:
        raise UserError(f"no successful run records under {Path(out_dir) / 'runs' / suite}")
    records = [runs.records[run_id] for run_id in ok["run_id"]]
    first = records[0]
    training = first.spec["training"]
    provenance = first.provenance
    keys = headline_keys(metric_keys(ok))
    datasets = sorted(set(ok["dataset"]))
    several = len(datasets) > 1
    header = [*(["dataset"] if several else []), "model", *(metric_header(k) for k in keys)]
    header += [metric_header(term) for term in TRAINING_TERMS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    shown = [*keys, *TRAINING_TERMS]
    columns = [value_column(k) for k in shown]
    summary = summary_stats(ok.assign(**{c: ok.get(c, float("nan")) for c in columns}), columns)
    stats = {row.Index: row for row in summary.itertuples()}  # (dataset, config, column) -> its row
    configs = ok.drop_duplicates(["dataset", "config"])
    for dataset, config in zip(configs["dataset"], configs["config"]):
        cells = [*([dataset] if several else []), config]
        for key, column in zip(shown, columns):
            digits = 1 if key in TRAINING_TERMS else 3
            cells.append(stats_text(stats.get((dataset, config, column)), digits, with_n=False))
        lines.append("| " + " | ".join(cells) + " |")
    train_s = sum(r.timing["train_seconds"] for r in records)
    eval_s = sum(r.timing["eval_seconds"] for r in records)
    commits = sorted(
        {
            (r.provenance.get("git_commit") or "unknown")[:12]
            + ("+" if r.provenance.get("git_dirty") else "")
            for r in records
        }
    )
    seeds = sorted(set(ok["seed"]))
    device = f"{provenance.get('device_name', 'unknown device')} ({provenance.get('device', '?')})"
    intro = (
        f"Produced by `vaebench run --suite {suite} --out results` then `vaebench table` and "
        f"`vaebench plot`, and this section by `python -m benchmarks.report.readme`: {', '.join(datasets)}, "
        f"{training['steps']:,} steps at batch "
        f"{training['batch_size']}, lr {training['learning_rate']:g}, "
        f"{first.spec['model_config']['architecture']} architecture, "
        f"seed(s) {', '.join(map(str, seeds))}"
        + (" (cells: mean ± std over seeds)" if len(seeds) > 1 else "")
        + f", the suite's metric settings; {len(ok)} of {trained} "
        f"runs ok; {train_s / 60:.1f} min of training and {eval_s / 60:.1f} min of evaluation in total "
        f"on {device}, code {', '.join(commits)}"
        + (" (+: with uncommitted changes)." if any(c.endswith("+") for c in commits) else ".")
    )
    # Every deviation from the study, computed from the records' full specs (the table's note too).
    intro += "\n\nProtocol: " + study_protocol_note(list(runs.records.values()))
    fewest_seeds = int(ok.groupby(["dataset", "config"], observed=True).size().min())
    figures = _figures(out_dir, suite, datasets) if fewest_seeds >= MIN_SEEDS else ""
    return intro + "\n\n" + "\n".join(lines) + "\n" + figures


def _figures(out_dir: Path, suite: str, datasets: list[str]) -> str:
    """Links to the analyses ``vaebench analyze`` drew for the suite, with the summary's path."""
    folder = Path(out_dir) / "analysis" / suite
    shown = [
        (stem, alt, dataset)
        for stem, alt in README_ANALYSES
        for dataset in datasets
        if (folder / f"{stem}_{dataset}.png").is_file()
    ]
    if not shown:
        return ""
    text = [
        "",
        f"Analyses by `vaebench analyze --suite {suite} --out {Path(out_dir).as_posix()}`; every "
        f"figure's method, n and the tables behind it are in `{(folder / 'summary.md').as_posix()}`.",
    ]
    for stem, alt, dataset in shown:
        path = (folder / f"{stem}_{dataset}.png").as_posix()
        text += ["", f"![{suite} / {dataset}: {alt}]({path})"]
    return "\n".join(text) + "\n"


def update_readme(readme: Path, out_dir: Path, suite: str) -> None:
    """Replace the marked section of ``readme`` in place."""
    text = readme.read_text(encoding="utf-8")
    begin, end = f"<!-- results:{suite} -->", f"<!-- /results:{suite} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise UserError(f"{readme} has no '{begin}' ... '{end}' section to replace")
    section = f"{begin}\n{results_section(out_dir, suite)}{end}"
    readme.write_text(pattern.sub(lambda _: section, text), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args(argv)
    update_readme(args.readme, args.out, args.suite)
    print(f"updated the results:{args.suite} section of {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
