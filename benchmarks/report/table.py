"""Result tables regenerated from the run records alone: ``DIR/tables/<suite>.{md,csv,tex}``.

Per dataset, one row per configuration (model and hyperparameters) and one column per
metric, each cell the mean ± std over seeds (std with ddof=1) with n; then each model's
best hyperparameter per metric by median over seeds; the failed runs; the protocol as
the records state it; and notes computed from the numbers. Nothing is written that the
records do not say: no timestamps, everything sorted, floats in fixed formats, so the
same records always give the same bytes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.report.presentation import (
    fmt,
    fmt_param,
    headline_keys,
    higher_is_better,
    metric_header,
    metric_notes,
    stats_text,
)
from benchmarks.report.runs_frame import (
    RunsFrame,
    read_runs,
    suites_to_report,
    summary_stats,
    value_column,
    value_keys,
)
from benchmarks.runner.protocol import compare_runs
from benchmarks.runner.records import RunRecord, atomic_write_text
from benchmarks.runner.spec import RunSpec
from vaebench.registry import UnknownNameError

__all__ = ["write_tables", "render_tables", "study_protocol_note"]

log = logging.getLogger(__name__)

_LOCATELLO = (
    "Locatello et al. (2019) found the variance across random seeds as large as the variance across models"
)


def write_tables(out_dir: Path, suite: str | None = None) -> list[Path]:
    """Write ``tables/<suite>.md``, ``.csv`` and ``.tex`` for each suite with records (or the one named).

    Unreadable records are logged (by path), listed in the tables and otherwise skipped;
    they are never rewritten. Returns the paths written, sorted.
    """
    out_dir = Path(out_dir)
    suites = suites_to_report(out_dir, suite)
    written = []
    for name in suites:
        for ext, text in sorted(render_tables(read_runs(out_dir, name)).items()):
            path = out_dir / "tables" / f"{name}.{ext}"
            atomic_write_text(path, text)
            written.append(path)
    return sorted(written)


def render_tables(runs: RunsFrame) -> dict[str, str]:
    """The three renderings of one suite's tables: {"md": ..., "csv": ..., "tex": ...}."""
    report = _build(runs)
    return {"md": _markdown(report), "csv": _csv(report), "tex": _latex(report)}


# -- the numbers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cell:
    """One table row: a configuration's label and how many ok runs (seeds) it has."""

    dataset: str
    model: str
    label: str
    hparam_text: str
    n_runs: int


#: A row of ``summary_stats`` as a named tuple: n, mean, std (NaN for one value), median, min, max,
#: q25, q75 and seeds.
_Stats = Any


@dataclass
class _Dataset:
    name: str
    cells: list[_Cell]
    stats: dict[tuple[str, str], _Stats | None]  # (configuration label, metric key) -> stats over seeds
    best: dict[str, dict[str, tuple[float, str] | None]]  # model -> key -> (median, hyperparameters)
    notes: list[str]


@dataclass
class _Report:
    runs: RunsFrame
    columns: list[str]
    directions: dict[str, bool | None]
    datasets: list[_Dataset]
    protocol: list[tuple[str, str]]


def _build(runs: RunsFrame) -> _Report:
    ok = runs.ok
    columns = value_keys(ok)
    directions = {k: higher_is_better(k) for k in columns}
    by_column = {value_column(k): k for k in columns}
    for column in by_column:
        if column not in ok.columns:
            ok = ok.assign(**{column: np.nan})
    table = summary_stats(ok, list(by_column))
    datasets = []
    for name in runs.datasets:
        mine = ok[ok["dataset"] == name]
        sizes = mine.groupby("config", sort=False, observed=True).size()
        first = mine.drop_duplicates("config").set_index("config")
        cells = [
            _Cell(name, str(first.at[c, "model"]), str(c), str(first.at[c, "hyperparameters"]), int(n))
            for c, n in sizes.items()
        ]
        stats: dict[tuple[str, str], _Stats | None] = {(c.label, k): None for c in cells for k in columns}
        if name in table.index.get_level_values("dataset"):
            for row in table.loc[name].itertuples():
                config, column = row.Index
                stats[(config, by_column[column])] = row
        nulls = int(mine[list(by_column)].isna().to_numpy().sum())
        datasets.append(
            _Dataset(
                name=name,
                cells=cells,
                stats=stats,
                best=_best(cells, stats, columns, directions),
                notes=_notes(cells, stats, columns, directions, nulls),
            )
        )
    return _Report(runs, columns, directions, datasets, _protocol(runs))


def _best(
    cells: list[_Cell],
    stats: dict[tuple[str, str], _Stats | None],
    columns: list[str],
    directions: dict[str, bool | None],
) -> dict[str, dict[str, tuple[float, str] | None]]:
    """Per model and metric, the configuration with the best median over seeds.

    The median, not the mean, so that one diverging seed does not pick a grid point.
    Ties go to the first configuration in sort order (lowest strength): ``idxmax``/``idxmin``
    return the first. Metrics with no better direction have no best and are left out.
    """
    medians = pd.DataFrame(
        [
            {"model": c.model, "hparams": c.hparam_text, "key": k, "median": s.median}
            for c in cells
            for k in columns
            if (s := stats[(c.label, k)]) is not None
        ],
        columns=["model", "hparams", "key", "median"],
    )
    best: dict[str, dict[str, tuple[float, str] | None]] = {}
    for model in sorted({c.model for c in cells}):
        best[model] = {}
        own = medians[medians["model"] == model]
        for key in columns:
            higher = directions.get(key)
            if higher is None:
                continue
            values = own[own["key"] == key]
            if values.empty:
                best[model][key] = None
                continue
            at = values["median"].idxmax() if higher else values["median"].idxmin()
            best[model][key] = (float(values.at[at, "median"]), str(values.at[at, "hparams"]))
    return best


def _notes(
    cells: list[_Cell],
    stats: dict[tuple[str, str], _Stats | None],
    columns: list[str],
    directions: dict[str, bool | None],
    nulls: int,
) -> list[str]:
    """Statements computed from this dataset's numbers; nothing here is an opinion."""
    notes = []
    max_n = max((c.n_runs for c in cells), default=0)
    if cells and max_n < 2:
        notes.append(
            "Every configuration has a single seed: differences between models are not tested against "
            f"seed noise. {_LOCATELLO}, so they may not be real."
        )
    if len(cells) == 1:
        notes.append(f"Only one configuration ({cells[0].label}): no comparison between models.")
    for key in headline_keys(columns) if len(cells) > 1 else []:
        have = [(c, stats[(c.label, key)]) for c in cells if stats[(c.label, key)] is not None]
        header = metric_header(key)
        if len(have) < 2:
            where = f" ({have[0][0].label} only)" if have else ""
            notes.append(
                f"{header}: values for {len(have)} configuration{where}; no comparison between models."
            )
            continue
        means = pd.Series([s.mean for _, s in have])
        lo, hi = have[int(means.idxmin())], have[int(means.idxmax())]
        spread = hi[1].mean - lo[1].mean
        text = (
            f"{header}: configuration means range from {fmt(lo[1].mean)} ({lo[0].label}) to "
            f"{fmt(hi[1].mean)} ({hi[0].label}), a spread of {_small(spread)} "
            f"across {len(have)} configurations."
        )
        seeded = [s for _, s in have if s.n > 1]
        if seeded:
            # Pooled within-configuration variance: sum (n_i - 1) s_i^2 / sum (n_i - 1).
            pooled = math.sqrt(sum((s.n - 1) * s.std**2 for s in seeded) / sum(s.n - 1 for s in seeded))
            verdict = "exceeds" if spread > pooled else "does not exceed"
            ratio = f" ({spread / pooled:.1f}×)" if pooled > 0 else ""
            text += f" The spread {verdict} the pooled seed std {_small(pooled)}{ratio}"
            single = len(have) - len(seeded)
            if single:
                plural = "s" if single > 1 else ""
                text += f"; {single} configuration{plural} with one value not in the pooled std"
            text += " (a descriptive comparison, not a significance test)."
        else:
            text += " Not tested against seed noise (one value per configuration)."
        notes.append(text)
    if nulls:
        notes.append(
            f"{nulls} value{'s are' if nulls > 1 else ' is'} null (not finite or not computed) "
            "in successful runs and left out; n counts the values present."
        )
    return notes


def _small(x: float) -> str:
    # Spreads and stds below 0.01 would read "0.000" with three decimals: give them two significant digits.
    return fmt(x) if x == 0 or abs(x) >= 0.01 else f"{x:.2g}"


def _distinct(values: Iterable[Any]) -> str:
    shown = sorted({fmt_param(v) for v in values if v is not None})
    if not shown:
        return "not recorded"
    return shown[0] if len(shown) == 1 else " / ".join(shown) + " (differs between runs)"


def _clip(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _protocol(runs: RunsFrame) -> list[tuple[str, str]]:
    """The settings behind the numbers, read from every record (failed ones included)."""
    frame = runs.frame
    records = [runs.records[run_id] for run_id in frame["run_id"]]
    if not records:
        return [("Runs", "no readable records")]
    specs = [r.spec for r in records]
    training = [s.get("training") or {} for s in specs]
    prov = [r.provenance for r in records]
    n_ok = int((frame["status"] == "ok").sum())
    lines = [
        (
            "Runs",
            f"{len(records)} records ({n_ok} ok, {len(records) - n_ok} failed); "
            f"seeds {', '.join(str(s) for s in sorted(set(frame['seed'].dropna())))}; "
            f"datasets {', '.join(runs.datasets)}; models {', '.join(sorted(set(frame['model'])))}",
        ),
        (
            "Training",
            f"steps {_distinct(t.get('steps') for t in training)}; "
            f"batch size {_distinct(t.get('batch_size') for t in training)}; "
            f"learning rate {_distinct(t.get('learning_rate') for t in training)}; "
            f"optimizer {_distinct(t.get('optimizer') for t in training)}; "
            f"precision {_distinct(p.get('precision') for p in prov)} "
            f"(requested {_distinct(t.get('precision') for t in training)})",
        ),
    ]
    settings: dict[str, set[str]] = {}
    for spec in specs:
        for name, kw in (spec.get("metrics") or {}).items():
            text = ", ".join(f"{k}={fmt_param(v)}" for k, v in sorted((kw or {}).items())) or "defaults"
            settings.setdefault(name, set()).add(text)
    metric_text = "; ".join(f"{name}: {' / '.join(sorted(v))}" for name, v in sorted(settings.items()))
    lines.append(("Metric settings", metric_text or "not recorded"))
    warned: dict[str, list[str]] = {}
    for record in records:
        for name, messages in sorted(record.metric_warnings.items()):
            if messages:
                warned.setdefault(name, []).append(str(messages[0]))
    if warned:
        # Warnings (non-convergence, degenerate codes) qualify the numbers; say where they happened.
        lines.append(
            (
                "Metric warnings",
                "; ".join(
                    f'{name} warned in {len(first)} of {len(records)} runs (e.g. "{_clip(min(first))}")'
                    for name, first in sorted(warned.items())
                ),
            )
        )
    lines.append(
        (
            "Evaluation",
            f"representation {_distinct(s.get('representation') for s in specs)}; "
            f"evaluation seed {_distinct(s.get('evaluation_seed') for s in specs)}",
        )
    )
    # What the metrics that ran say about themselves (which of two MIGs a number is, say).
    lines += metric_notes(settings)
    sources = []
    for dataset in runs.datasets:
        mine = [(r.spec, r.provenance) for r in records if str(r.spec["dataset"]) == dataset]
        used = _distinct((p.get("dataset") or {}).get("source") for _, p in mine)
        asked = _distinct(s.get("dataset_source") for s, _ in mine)
        sources.append(f"{dataset}: {used} (requested {asked})")
    lines.append(("Dataset source", "; ".join(sources)))
    devices = sorted({f"{p.get('device', '?')} ({p.get('device_name', '?')})" for p in prov})
    lines.append(("Device", "; ".join(devices)))
    if len(devices) > 1:  # numbers reproduce bit for bit only on one processor type
        lines.append(
            (
                "Mixed machines",
                f"these runs come from {len(devices)} device types; the same seed gives the same numbers "
                "only on the same type, so rows from different types differ by about seed noise, not "
                "by their settings alone",
            )
        )
    commits = sorted({str(p.get("git_commit")) for p in prov if p.get("git_commit")})
    dirty = sum(1 for p in prov if p.get("git_dirty"))
    code = ", ".join(c[:12] for c in commits) or "not recorded"
    if dirty:
        code += f" ({dirty} run{'s' if dirty > 1 else ''} from a tree with uncommitted changes)"
    lines.append(("Git commit", code))
    versions = []
    for lib in ("vaebench", "torch", "numpy", "scikit_learn"):
        versions.append(f"{lib} {_distinct(p.get(lib) for p in prov)}")
    lines.append(("Versions", "; ".join(versions)))
    lines.append(("Study protocol", study_protocol_note(records)))
    return lines


def study_protocol_note(records: list[RunRecord]) -> str:
    """Every deviation of the runs from disentanglement_lib's unsupervised_study_v1.

    Computed from their full specs and from what their provenance says ran
    (``protocol.compare_runs``).
    """
    specs, ran, unknown = [], {}, []
    external = sorted({str(r.spec.get("model")) for r in records if r.kind == "external"})
    for record in records:
        if record.kind == "external":  # trained elsewhere: no protocol of ours to compare
            continue
        try:
            spec = RunSpec.from_dict(record.spec)
            spec.full_model_config()  # the variant must be installed to diff its full config
        except (UnknownNameError, TypeError, ValueError):
            unknown.append(str(record.spec.get("model")))
            continue
        specs.append(spec)
        prov = record.provenance
        ran[spec.run_id] = {
            key: value
            for key, value in (
                ("precision", prov.get("precision")),
                ("dataset_source", (prov.get("dataset") or {}).get("source")),
            )
            if value is not None
        }
    text = compare_runs(specs, ran=ran).note().removeprefix("Protocol: ")
    if unknown:
        missing = ", ".join(sorted(set(unknown)))
        text += f" Not compared: {len(unknown)} run(s) of models not installed here ({missing})."
    if external:
        text += (
            f" Not compared: {', '.join(external)}, representation(s) trained elsewhere and scored by "
            "`vaebench score` (same metrics and settings, no training of ours)."
        )
    return text


# -- renderings ------------------------------------------------------------------------------------


def _best_text(choice: tuple[float, str] | None) -> str:
    if choice is None:
        return "—"
    return f"{fmt(choice[0])} ({choice[1] or 'single config'})"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return lines


def _sections(report: _Report) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, caption) of every table, shared by the Markdown and LaTeX renderings."""
    headers = [metric_header(k) for k in report.columns]
    ranked = [k for k in report.columns if report.directions.get(k) is not None]
    out = []
    for ds in report.datasets:
        rows = [[c.label] + [stats_text(ds.stats[(c.label, k)]) for k in report.columns] for c in ds.cells]
        out.append(
            (
                f"{ds.name}: mean ± std over seeds",
                ["model"] + headers,
                rows,
                "std with ddof=1; n = seeds with a value; — = no value.",
            )
        )
        if len({c.model for c in ds.cells}) == len(ds.cells):
            continue  # every model has one configuration: no hyperparameter to choose
        best_rows = [[m] + [_best_text(ds.best[m].get(k)) for k in ranked] for m in sorted(ds.best)]
        out.append(
            (
                f"{ds.name}: best hyperparameter per model and metric (median over seeds)",
                ["model"] + [metric_header(k) for k in ranked],
                best_rows,
                "Each cell: the best median over seeds among the model's configurations, and that "
                "configuration's hyperparameters. Ties go to the first configuration in table order.",
            )
        )
    frame = report.runs.frame
    failed = [
        [
            str(row["dataset"]),
            str(row["config"]),
            str(row["seed"]),
            str(row["run_id"]),
            "?" if pd.isna(row["failure_step"]) else str(row["failure_step"]),
            "not recorded" if pd.isna(row["failure_reason"]) else str(row["failure_reason"]),
        ]
        for _, row in frame[frame["status"] != "ok"].iterrows()
    ]
    if failed:
        out.append(
            (
                "Failed runs (excluded from every number above)",
                ["dataset", "model", "seed", "run", "step", "reason"],
                failed,
                "",
            )
        )
    return out


def _markdown(report: _Report) -> str:
    lines = [
        f"# Suite `{report.runs.suite}`",
        "",
        f"Regenerated from the run records in `runs/{report.runs.suite}/`. "
        "↑ higher is better, ↓ lower is better, — neither. "
        "Reconstruction and KL are the training objective's terms averaged over the last log window.",
    ]
    for title, header, rows, caption in _sections(report):
        lines += ["", f"## {title}", ""]
        lines += _md_table(header, rows) if rows else ["(no successful runs)"]
        if caption:
            lines += ["", caption]
    if report.runs.skipped:
        lines += ["", "## Unreadable records (skipped, left as they are)", ""]
        lines += [f"- `{s.path}`: {_md_escape(s.reason)}" for s in report.runs.skipped]
    lines += ["", "## Protocol (read from the records)", ""]
    lines += [f"- **{k}:** {v}" for k, v in report.protocol]
    lines += ["", "## Notes (computed from the records)", ""]
    for ds in report.datasets:
        lines += [f"- **{ds.name}:** {note}" for note in ds.notes]
    return "\n".join(lines) + "\n"


def _csv(report: _Report) -> str:
    """One row per (dataset, configuration, metric) with full-precision numbers, for re-analysis.

    Written by pandas' CSV writer: floats in their shortest round-trip form, empty where missing.
    """
    rows = []
    for ds in report.datasets:
        for cell in ds.cells:
            for key in report.columns:
                s = ds.stats[(cell.label, key)]
                higher = report.directions.get(key)
                rows.append(
                    {
                        "suite": report.runs.suite,
                        "dataset": ds.name,
                        "model": cell.model,
                        "hyperparameters": cell.hparam_text,
                        "config": cell.label,
                        "metric": key,
                        "header": metric_header(key),
                        "higher_is_better": "" if higher is None else str(higher).lower(),
                        "n": 0 if s is None else s.n,
                        "mean": math.nan if s is None else s.mean,
                        "std": math.nan if s is None else s.std,
                        "median": math.nan if s is None else s.median,
                        "min": math.nan if s is None else s.min,
                        "max": math.nan if s is None else s.max,
                        "seeds": "" if s is None else s.seeds,
                    }
                )
    columns = ["suite", "dataset", "model", "hyperparameters", "config", "metric", "header"]
    columns += ["higher_is_better", "n", "mean", "std", "median", "min", "max", "seeds"]
    return pd.DataFrame(rows, columns=columns).to_csv(index=False, lineterminator="\n")


_TEX_REPLACE = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "—": "---",
    "β": r"$\beta$",
    "×": r"$\times$",
    "`": "",
}


def _tex(text: str) -> str:
    return "".join(_TEX_REPLACE.get(ch, ch) for ch in text)


def _latex(report: _Report) -> str:
    lines = [
        f"% Tables of suite {report.runs.suite}, regenerated from its run records.",
        "% Needs \\usepackage{booktabs} and \\usepackage{graphicx}.",
    ]
    for title, header, rows, caption in _sections(report):
        lines += [
            "",
            r"\begin{table}[t]",
            r"\centering",
            r"\caption{" + _tex(title + (". " + caption if caption else "")) + "}",
            r"\resizebox{\textwidth}{!}{%",
            r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
            r"\toprule",
            " & ".join(_tex(h) for h in header) + r" \\",
            r"\midrule",
        ]
        lines += [" & ".join(_tex(c) for c in row) + r" \\" for row in rows]
        lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    if report.runs.skipped:
        lines += ["", r"\paragraph{Unreadable records (skipped).}", r"\begin{itemize}"]
        lines += [r"\item " + _tex(f"{s.path}: {s.reason}") for s in report.runs.skipped]
        lines += [r"\end{itemize}"]
    lines += ["", r"\paragraph{Protocol (read from the records).}", r"\begin{itemize}"]
    lines += [r"\item \textbf{" + _tex(k) + ":} " + _tex(v) for k, v in report.protocol]
    lines += [r"\end{itemize}", "", r"\paragraph{Notes (computed from the records).}", r"\begin{itemize}"]
    for ds in report.datasets:
        lines += [r"\item \textbf{" + _tex(ds.name) + ":} " + _tex(note) for note in ds.notes]
    lines += [r"\end{itemize}"]
    return "\n".join(lines) + "\n"
