"""Reporting: tables and figures regenerated from the run records alone.

``write_tables(out_dir, suite=None)`` writes ``tables/<suite>.{md,csv,tex}``;
``write_figures(out_dir, suite=None)`` writes ``figures/<suite>/*.png``. Both read
``runs/<suite>/*.json`` (and, for traversals, ``artifacts/<suite>/*.npz``) and
nothing else, so a result can be re-tabulated and re-plotted anywhere.
"""

from benchmarks.report.plot import write_figures
from benchmarks.report.table import write_tables

__all__ = ["write_tables", "write_figures"]
