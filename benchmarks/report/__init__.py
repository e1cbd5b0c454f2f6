"""Reporting: tables, figures, exports and analyses regenerated from the run records alone.

``load_results(out_dir, suite=None)`` reads ``runs/<suite>/*.json`` as typed ``RunRecord``s into
one tidy ``pandas.DataFrame`` (one row per run; see ``benchmarks.report.runs_frame`` for the
columns) and ``melt_results(df)`` gives its long form (one row per run and metric). On it:
``write_tables(out_dir, suite=None)`` writes ``tables/<suite>.{md,csv,tex}``;
``write_figures(out_dir, suite=None)`` writes ``figures/<suite>/*.png``;
``export_results(out_dir, suite, fmt)`` writes the table as CSV, Parquet or JSON;
``write_analysis(out_dir, suite=None)`` writes ``analysis/<suite>/*.png`` and ``summary.md``.
All read ``runs/<suite>/*.json`` (and, for traversals, ``artifacts/<suite>/*.npz``) and
nothing else, so a result can be re-tabulated and re-plotted anywhere.

The modules: ``runs_frame`` (records -> the frame, and ``summary_stats`` over seeds),
``presentation`` (metric labels, directions, headline order and notes, read from the metric
registry; number formatting), ``table``, ``plot``, ``readme`` (the README's results sections),
``export``, ``analysis_stats`` (the study's statistics on a frame) and ``analyses`` (the
figures and summary of ``vaebench analyze``).
"""

from benchmarks.report.analyses import write_analysis
from benchmarks.report.export import EXPORT_FORMATS, MissingDependency, export_results
from benchmarks.report.plot import write_figures
from benchmarks.report.runs_frame import load_results, melt_results
from benchmarks.report.table import write_tables

__all__ = [
    "load_results",
    "melt_results",
    "write_tables",
    "write_figures",
    "export_results",
    "EXPORT_FORMATS",
    "MissingDependency",
    "write_analysis",
]
