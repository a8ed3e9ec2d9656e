"""The figures of the reliability tests, counted while they run.

Tests call :func:`tally` for every malformed input they try, fault they inject,
kill they survive and result they find lost; ``tests/conftest.py`` prints the
totals at the end of the session and, when ``EDM_BENCH_RELIABILITY_JSON`` names
a file, writes them there, so that a closing note quotes measured numbers.
"""

from __future__ import annotations

import json
import os
from collections import Counter

#: Totals of this test session, by figure.
FIGURES: Counter[str] = Counter()

MALFORMED = "malformed inputs tried"
FAULTS = "faults injected"
KILLS = "kills survived"
LOST = "results lost"
OVERSIZED = "oversized inputs refused"
BAD_OUTPUTS = "bad network outputs isolated"
NO_CONSENT = "code refused without consent"


def tally(figure: str, n: int = 1) -> None:
    """Add ``n`` to ``figure`` (0 still records that the figure was measured)."""
    FIGURES[figure] += n


def report() -> str:
    """One line of the session's figures, or "" when no reliability test ran."""
    if not FIGURES:
        return ""
    path = os.environ.get("EDM_BENCH_RELIABILITY_JSON")
    if path:
        with open(path, "w") as fh:
            json.dump(dict(FIGURES), fh, indent=2, sort_keys=True)
    return "reliability: " + ", ".join(f"{figure}: {n}" for figure, n in sorted(FIGURES.items()))
