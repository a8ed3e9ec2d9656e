"""Figures and reports: functions of result tables (pandas) only.

Nothing here imports torch, tblite or the oracles, so reports can be rebuilt
from stored tables anywhere.
"""

from bench.reports.figures import FIGURES, save_figures
from bench.reports.report import write_report

__all__ = ["FIGURES", "save_figures", "write_report"]
