"""When progress bars are drawn: one per batch of work, on a terminal.

A bar for a single calculation (a baseline relaxing one molecule) would open and
close once per molecule and fill a log with thousands of lines, so batches of one
draw none. Where stderr is not a terminal (a log file, CI) bars are off unless
``EDM_BENCH_PROGRESS=1`` (``edm-bench run --progress``) asks for them.
"""

from __future__ import annotations

import os
import sys


def show_progress(n_items: int) -> bool:
    """Whether a batch of ``n_items`` draws a progress bar."""
    if n_items <= 1:
        return False
    wanted = os.environ.get("EDM_BENCH_PROGRESS")
    if wanted is not None:
        return wanted == "1"
    return sys.stderr.isatty()
