"""Tables for a terminal or a log: never wider than the console, no cell cut.

Rich would shrink every column to fit and cut numbers to "4.…"; here the first
column (names) folds onto more lines, and the last columns are left out, and
counted in the caption, until the rest fit. The files keep every column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def print_fitted(title: str, first: str, rows: Mapping[str, Sequence[str]], headers: Sequence[str], caption: str,
                 width: int | None = None, where: str = "the CSV") -> None:
    """Print ``rows`` (name -> cells, one per header) under ``first`` and ``headers``.

    ``width`` defaults to the terminal's (80 in a log); ``where`` names the file
    that holds the columns left out.
    """
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=width) if width else Console()
    widths = [max([len(h), *(len(r[k]) for r in rows.values())]) + 1 for k, h in enumerate(headers)]
    name_width = min(24, max(len(first), *(len(m) for m in rows)))
    keep = len(widths)
    while keep > 1 and name_width + sum(widths[:keep]) + keep + 4 > console.width:
        keep -= 1
    left_out = len(widths) - keep
    table = Table(title=escape(title), box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0),
                  caption=escape(caption.rstrip(".") + (f"; {left_out} more columns in {where}" if left_out else "")))
    table.add_column(first, overflow="fold", min_width=min(name_width, 16), max_width=name_width)
    for header in headers[:keep]:
        table.add_column(header, justify="right", no_wrap=True)
    for name, cells in rows.items():
        table.add_row(escape(name), *cells[:keep])
    console.print(table)
