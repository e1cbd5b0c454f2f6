"""Reporting: tables, figures, exports and analyses regenerated from the run records alone.

``load_results(out_dir, suite=None)`` reads ``runs/<suite>/*.json`` into one tidy
``pandas.DataFrame`` (one row per run; see ``benchmarks.report.results`` for the columns) and
``melt_results(df)`` gives its long form (one row per run and metric). On it:
``write_tables(out_dir, suite=None)`` writes ``tables/<suite>.{md,csv,tex}``;
``write_figures(out_dir, suite=None)`` writes ``figures/<suite>/*.png``;
``export_results(out_dir, suite, fmt)`` writes the table as CSV, Parquet or JSON;
``write_analysis(out_dir, suite=None)`` writes ``analysis/<suite>/*.png`` and ``summary.md``.
All read ``runs/<suite>/*.json`` (and, for traversals, ``artifacts/<suite>/*.npz``) and
nothing else, so a result can be re-tabulated and re-plotted anywhere.
"""

from benchmarks.report.analyze import write_analysis
from benchmarks.report.export import EXPORT_FORMATS, MissingDependency, export_results
from benchmarks.report.plot import write_figures
from benchmarks.report.results import load_results, melt_results
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
