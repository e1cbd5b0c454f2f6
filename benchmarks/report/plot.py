"""Figures regenerated from the run records and artifacts: ``DIR/figures/<suite>/*.png``.

Per dataset:

* ``distributions_<dataset>.png``  each headline metric's distribution per model, pooled over
  hyperparameters and seeds (box + every run as a point), as in Locatello et al. (2019);
* ``strength_<dataset>.png``  every metric against the regularisation strength, one line per
  model (mean ± std over seeds);
* ``tradeoff_<dataset>.png``  final reconstruction against final KL, one colour per model,
  each configuration's mean annotated with its hyperparameters;
* ``traversals_<dataset>_<model>.png``  latent traversals of one run per model (from its artifact);
* ``mi_<dataset>.png``  the codes-by-factors mutual-information matrix of one run per model.

Failed runs and null metric values are left out of every plot. Figures are drawn with the
Agg canvas on ``Figure`` objects (no pyplot, no global state) and saved without the
software-version stamp, so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from benchmarks.report.presentation import fmt, fmt_param, headline_keys, metric_header
from benchmarks.report.runs_frame import (
    FINAL_PREFIX,
    RunsFrame,
    read_runs,
    suites_to_report,
    summary_stats,
    value_column,
    value_keys,
)
from benchmarks.runner.records import RunRecord, artifact_path
from vaebench.atomic import atomic_write_bytes

__all__ = ["write_figures"]

log = logging.getLogger(__name__)

_PREFIXES = ("distributions_", "strength_", "tradeoff_", "traversals_", "mi_")
_DPI = 100


def write_figures(out_dir: Path, suite: str | None = None) -> list[Path]:
    """Write the PNG figures of each suite with records (or the one named); returns the paths, sorted.

    A figure with nothing to show (no strength sweep, no artifact for a model) is skipped
    with a logged message. Figures of ours left over from an earlier regeneration that
    the records no longer produce are removed, so the folder matches the records.
    """
    out_dir = Path(out_dir)
    suites = suites_to_report(out_dir, suite)
    written: list[Path] = []
    for name in suites:
        folder = out_dir / "figures" / name
        mine = _suite_figures(out_dir, read_runs(out_dir, name), folder)
        _remove_stale_figures(folder, _PREFIXES, mine)
        written += mine
    return sorted(written)


@dataclass(frozen=True)
class _Config:
    """One configuration's successful runs (rows of the frame, by seed) and what its label is made of."""

    model: str
    label: str
    runs: pd.DataFrame
    pairs: tuple[tuple[str, Any], ...]  # (field, value) pairs of the label, strength first
    strength_field: str | None
    strength: float | None  # the regularisation strength's value; None without one
    stats: dict[str, Any]  # value key -> its row of ``summary_stats`` (n, mean, std, ...)

    def values(self, key: str) -> list[float]:
        """The runs' values of a metric or training term, by seed; missing ones left out."""
        column = value_column(key)
        return self.runs[column].dropna().tolist() if column in self.runs else []


def _configurations(runs: RunsFrame, dataset: str, keys: list[str]) -> list[_Config]:
    """The dataset's configurations in table order, with the statistics of ``keys`` over seeds."""
    ok = runs.ok[runs.ok["dataset"] == dataset]
    columns = {value_column(k): k for k in keys}
    ok = ok.assign(**{c: ok.get(c, np.nan) for c in columns})
    summary = {row.Index: row for row in summary_stats(ok, list(columns), by=["config"]).itertuples()}
    out = []
    for label, rows in ok.groupby("config", sort=False, observed=True):
        first = rows.iloc[0]
        value = first["strength_value"]
        out.append(
            _Config(
                model=str(first["model"]),
                label=str(label),
                runs=rows,
                pairs=runs.pairs[(dataset, str(label))],
                strength_field=None if pd.isna(first["strength_field"]) else str(first["strength_field"]),
                strength=None if pd.isna(value) else float(value),
                stats={k: summary[(label, c)] for c, k in columns.items() if (label, c) in summary},
            )
        )
    return out


def _suite_figures(out_dir: Path, runs: RunsFrame, folder: Path) -> list[Path]:
    if runs.ok.empty:
        log.warning("suite %s has no successful runs: no figures", runs.suite)
        return []
    columns = value_keys(runs.ok)
    models = sorted(set(runs.frame["model"]))
    colours = {m: _colour(i) for i, m in enumerate(models)}
    written = []
    for dataset in runs.datasets:
        cells = _configurations(runs, dataset, columns)
        if not cells:
            log.warning("%s/%s: no successful runs, no figures", runs.suite, dataset)
            continue
        title = f"{runs.suite} / {dataset}"
        chosen = _one_run_per_model(cells)
        figures = {
            f"distributions_{dataset}": _distributions(title, cells, columns, colours),
            f"strength_{dataset}": _strength(title, cells, columns, colours),
            f"tradeoff_{dataset}": _tradeoff(title, cells, colours),
            f"mi_{dataset}": _mi_matrices(
                title, {m: (run, runs.records[run["run_id"]]) for m, run in chosen.items()}
            ),
        }
        for model, run in chosen.items():
            if runs.records[run["run_id"]].kind == "external":  # no decoder: nothing to traverse
                continue
            figures[f"traversals_{dataset}_{model}"] = _traversals(out_dir, title, runs.suite, run)
        for stem, fig in sorted(figures.items()):
            if fig is None:
                continue
            path = folder / f"{_safe(stem)}.png"
            _save(fig, path)
            written.append(path)
    return written


# -- the figures -----------------------------------------------------------------------------------


def _distributions(title, cells: list[_Config], columns, colours) -> Figure | None:
    keys = [k for k in headline_keys(columns) if any(c.values(k) for c in cells)]
    if not keys:
        log.warning("%s: no headline metric has a value; no distribution figure", title)
        return None
    models = sorted({c.model for c in cells})
    width = 0.9 * len(models) + 1.6
    fig, axes = _grid(len(keys), panel=(width, 3.2), ncols=max(1, int(16 // width)))
    n_runs = len({run_id for c in cells for run_id in c.runs["run_id"]})
    fig.suptitle(f"{title}: score per model over hyperparameters and seeds ({n_runs} runs)", fontsize=11)
    for ax, key in zip(axes, keys):
        per_model = [[v for c in cells if c.model == m for v in c.values(key)] for m in models]
        positions = [i for i, vals in enumerate(per_model) if vals]
        ax.boxplot(
            [per_model[i] for i in positions],
            positions=positions,
            widths=0.55,
            showfliers=False,  # every run is drawn as a point below
            medianprops={"color": "black"},
        )
        for i, vals in enumerate(per_model):
            # Even spread instead of random jitter: same picture every time.
            offsets = np.linspace(-0.18, 0.18, len(vals)) if len(vals) > 1 else np.zeros(len(vals))
            ax.scatter(i + offsets, vals, s=16, color=colours[models[i]], zorder=3, alpha=0.85)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(
            [f"{m}\n(n={len(v)})" for m, v in zip(models, per_model)], rotation=30, ha="right", fontsize=8
        )
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.set_title(metric_header(key), fontsize=9)
        ax.set_ylabel("score", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    return fig


def _strength(title, cells: list[_Config], columns, colours) -> Figure | None:
    keys = [k for k in columns if any(c.values(k) for c in cells)]
    swept = [c for c in cells if c.strength is not None]
    if not swept or not keys:
        log.warning("%s: no run has a regularisation strength; no strength figure", title)
        return None
    xs = [c.strength for c in swept]
    log_x = min(xs) > 0 and max(xs) / min(xs) >= 10  # log only where the sweep spans a decade
    grid_values = sorted(set(xs))
    lines = _lines(cells)
    fig, axes = _grid(len(keys), panel=(3.6, 2.9))
    fig.suptitle(f"{title}: metrics against regularisation strength (mean ± std over seeds)", fontsize=11)
    handles: dict[str, object] = {}
    for ax, key in zip(axes, keys):
        for name, line in lines.items():
            line_cells = [c for c, _ in line]
            model = line_cells[0].model
            stats = [(c, c.stats[key]) for c in line_cells if key in c.stats]
            if not stats:
                continue
            if line_cells[0].strength is None:
                # No strength: a horizontal reference line at the model's mean, its seed std shaded.
                s0 = stats[0][1]
                h = ax.axhline(s0.mean, color=colours[model], linestyle="--", linewidth=1.2)
                if s0.n > 1 and s0.std:
                    ax.axhspan(
                        s0.mean - s0.std, s0.mean + s0.std, color=colours[model], alpha=0.12, linewidth=0
                    )
            else:
                x = [c.strength for c, _ in stats]
                y = [s.mean for _, s in stats]
                err = [s.std if s.n > 1 else 0.0 for _, s in stats]
                h = ax.errorbar(x, y, yerr=err, color=colours[model], marker="o", markersize=4, capsize=3)
            handles.setdefault(name, h)
        if log_x:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        if len(grid_values) <= 8:  # few grid points: tick exactly those
            ax.set_xticks(grid_values)
            ax.set_xticklabels([f"{v:g}" for v in grid_values])
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(metric_header(key), fontsize=9)
        ax.set_xlabel("regularisation strength" + (" (log scale)" if log_x else ""), fontsize=8)
        ax.set_ylabel("mean over seeds", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    legend = {"handles": list(handles.values()), "labels": list(handles), "fontsize": 8, "frameon": False}
    if len(axes) > len(keys):
        # A free panel slot: the legend goes there instead of taking a strip under the figure.
        spare = axes[len(keys)]
        spare.set_visible(True)
        spare.axis("off")
        spare.legend(loc="center", title="model (strength field)", title_fontsize=8, **legend)
    else:
        fig.legend(loc="outside lower center", ncol=min(4, len(handles)), **legend)
    return fig


def _tradeoff(title, cells: list[_Config], colours) -> Figure | None:
    kl, reconstruction = FINAL_PREFIX + "kl", FINAL_PREFIX + "reconstruction"
    points = [
        (c, float(k), float(rec))
        for c in cells
        if kl in c.runs and reconstruction in c.runs
        for k, rec in zip(c.runs[kl], c.runs[reconstruction])
        if not (pd.isna(k) or pd.isna(rec))
    ]
    if not points:
        log.warning("%s: no run has final reconstruction and KL; no trade-off figure", title)
        return None
    fig = Figure(figsize=(8.0, 5.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, line in _lines(cells).items():
        colour = colours[line[0][0].model]
        runs = np.array([(k, rec) for cell, _ in line for c, k, rec in points if c is cell])
        if not len(runs):
            continue
        ax.scatter(*runs.T, s=22, color=colour, alpha=0.6, linewidths=0)
        centres = []
        for cell, short in line:
            mine = np.array([(k, rec) for c, k, rec in points if c is cell])
            if len(mine):
                centres.append((*mine.mean(axis=0), short))
        xy = np.array([(x, y) for x, y, _ in centres])
        # Configuration means, joined in strength order and labelled with the strength value.
        ax.plot(
            *xy.T, color=colour, linewidth=1.0, marker="o", markersize=6, markeredgecolor="black", label=name
        )
        for x, y, short in centres:
            if short:
                ax.annotate(
                    short, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7, color=colour
                )
    ax.set_xlabel("final KL (nats, last log window)", fontsize=9)
    ax.set_ylabel("final reconstruction (last log window, lower is better)", fontsize=9)
    ax.set_title(
        f"{title}: reconstruction / KL trade-off\n"
        "(faint points: runs; outlined: configuration means, labelled with the strength)",
        fontsize=10,
    )
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _traversals(out_dir: Path, title: str, suite: str, run: pd.Series) -> Figure | None:
    """Latent traversals of one run (a row of the frame), from its artifact."""
    path = artifact_path(out_dir, suite, run["run_id"])
    where = path.relative_to(out_dir).as_posix()
    label, seed = run["config"], int(run["seed"])
    if not path.is_file():
        log.warning("no traversal artifact for %s seed %d at %s; skipping its traversals", label, seed, where)
        return None
    try:
        with np.load(path) as data:
            images = np.asarray(data["traversals"])  # (n_latents, n_steps, C, 64, 64) uint8
            values = np.asarray(data["traversal_values"], dtype=np.float64)  # (n_steps,)
            kl = np.asarray(data["kl_per_dim"], dtype=np.float64)  # (n_latents,)
    except (OSError, KeyError, ValueError) as exc:
        log.warning("traversal artifact %s is unreadable (%s); skipping %s", where, exc, label)
        return None
    if images.ndim != 5 or images.shape[2] not in (1, 3) or images.shape[:2] != (len(kl), len(values)):
        log.warning("traversal artifact %s has unexpected shapes %s; skipping %s", where, images.shape, label)
        return None
    n_latents, n_steps, channels, h, w = images.shape
    order = np.argsort(-kl, kind="stable")  # most active latent first
    pad = 2
    montage = np.full((n_latents * (h + pad) - pad, n_steps * (w + pad) - pad, channels), 255, dtype=np.uint8)
    for row, i in enumerate(order):
        for col in range(n_steps):
            tile = images[i, col].transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
            montage[row * (h + pad) : row * (h + pad) + h, col * (w + pad) : col * (w + pad) + w] = tile
    fig = Figure(figsize=(0.75 * n_steps + 2.2, 0.75 * n_latents + 1.3))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if channels == 1:
        ax.imshow(montage[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(montage, interpolation="nearest")
    ax.set_yticks([r * (h + pad) + h / 2 for r in range(n_latents)])
    ax.set_yticklabels([f"z{i}  KL {fmt(kl[i], 2)}" for i in order], fontsize=8)
    ax.set_xticks([c * (w + pad) + w / 2 for c in range(n_steps)])
    ax.set_xticklabels([f"{v:+.1f}" for v in values], fontsize=8)
    # The runner sets the traversed latent to each value; the others stay at the reference image's mean.
    ax.set_xlabel(
        "value of the traversed latent (others fixed at a reference image's posterior mean)", fontsize=8
    )
    ax.set_ylabel("latent (most active first)", fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(f"{title}: traversals of {label}, seed {seed}\nrows ordered by KL per latent", fontsize=9)
    fig.tight_layout()
    return fig


def _mi_matrices(title, chosen: dict[str, tuple[pd.Series, RunRecord]]) -> Figure | None:
    """The MI matrix of one run per model: {model: (its row of the frame, its record)}."""
    mats = {}
    for model, (run, record) in chosen.items():
        mi = record.mi_matrix or {}
        matrix = np.asarray(mi.get("codes_by_factors") or [], dtype=np.float64)
        if matrix.ndim == 2 and matrix.size:
            names = list(mi.get("factor_names") or [f"factor {j}" for j in range(matrix.shape[1])])
            mats[model] = (run, matrix, names)
    if not mats:
        log.warning("%s: no run has a mutual-information matrix; no MI figure", title)
        return None
    finite = [float(m[np.isfinite(m)].max()) for _, m, _ in mats.values() if np.isfinite(m).any()]
    vmax = max(finite, default=0.0) or 1.0
    n_codes = max(m.shape[0] for _, m, _ in mats.values())
    n_factors = max(m.shape[1] for _, m, _ in mats.values())
    fig, axes = _grid(len(mats), panel=(0.55 * n_factors + 1.6, 0.32 * n_codes + 1.8), ncols=3)
    fig.suptitle(
        f"{title}: mutual information between codes and factors (nats)\none run per model", fontsize=10
    )
    image = None
    for ax, (run, matrix, names) in zip(axes, [mats[m] for m in sorted(mats)]):
        image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=vmax, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(matrix.shape[1]))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(matrix.shape[0]))
        ax.set_yticklabels([f"z{i}" for i in range(matrix.shape[0])], fontsize=8)
        ax.set_title(f"{run['config']}, seed {run['seed']}", fontsize=9)
        ax.set_xlabel("factor", fontsize=8)
        ax.set_ylabel("latent code", fontsize=8)
        if matrix.size <= 150:
            for (i, j), v in np.ndenumerate(matrix):
                colour = "black" if v > 0.6 * vmax else "white"
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5, color=colour)
    fig.colorbar(image, ax=list(axes[: len(mats)]), shrink=0.8, label="MI (nats)")
    return fig


# -- helpers ---------------------------------------------------------------------------------------


def _one_run_per_model(cells: list[_Config]) -> dict[str, pd.Series]:
    """Per model: the first grid point in sort order (lowest strength), then its lowest seed."""
    chosen: dict[str, pd.Series] = {}
    for cell in cells:  # already sorted by model and hyperparameters; runs by seed
        if cell.model not in chosen and len(cell.runs):
            chosen[cell.model] = cell.runs.iloc[0]
    return chosen


def _lines(cells: list[_Config]) -> dict[str, list[tuple[_Config, str]]]:
    """Group the points into one line per model, split by independently varying hyperparameters.

    A line is named "model (strength field)", split further by any hyperparameter that varies
    independently of the strength; each configuration has a short point label.

    A hyperparameter set from the strength (DIP-VAE-I's lambda_d = 10 lambda_od) moves along
    the line and neither splits it nor appears in the point label.
    """
    lines: dict[str, list[tuple[_Config, str]]] = {}
    for model in sorted({c.model for c in cells}):
        own = [c for c in cells if c.model == model]
        if not own:
            continue
        field = own[0].strength_field
        tied = set()
        for key in {k for c in own for k, _ in c.pairs if k != field}:
            seen: dict[str, set[str]] = {}
            for c in own:
                params = dict(c.pairs)
                seen.setdefault(repr(params.get(field)), set()).add(repr(params.get(key)))
            if field is not None and all(len(v) == 1 for v in seen.values()):
                tied.add(key)
        for c in own:
            rest = ", ".join(f"{k}={fmt_param(v)}" for k, v in c.pairs if k != field and k not in tied)
            name = model + (f" ({field})" if field else " (no strength)") + (f" [{rest}]" if rest else "")
            lines.setdefault(name, []).append((c, "" if c.strength is None else f"{c.strength:g}"))
    for line in lines.values():
        line.sort(key=lambda cs: (cs[0].strength is None, cs[0].strength or 0.0))
    return lines


def _grid(n: int, panel: tuple[float, float], ncols: int = 4) -> tuple[Figure, Sequence]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    # At least 6.4 in wide, so that the figure's title fits above a single narrow panel.
    fig = Figure(figsize=(max(panel[0] * ncols, 6.4), panel[1] * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _colour(i: int) -> tuple[float, float, float]:
    palette = colormaps["tab10"].colors  # ten distinct colours; models beyond ten repeat them
    return palette[i % len(palette)]


def _safe(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem)


def _remove_stale_figures(folder: Path, prefixes: tuple[str, ...], keep: Sequence[Path]) -> None:
    """Delete the PNGs in ``folder`` named with one of our ``prefixes`` that are not in ``keep``.

    So that a regenerated folder holds only the figures the records still produce.
    """
    for stale in sorted(folder.glob("*.png")) if folder.is_dir() else []:
        if stale.name.startswith(prefixes) and stale not in keep:
            stale.unlink()


def _save(fig: Figure, path: Path) -> None:
    """PNG without the software stamp, written beside the destination and renamed into place."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())
