"""The dataset and table tables of ``docs/results.md``, generated from ``schema.LAYOUT``.

The reference marks each generated part with ``<!-- layout: SELECTOR ... -->`` and
``<!-- /layout -->``; a selector takes the entry of that name and those under it (``rounds``:
every ``rounds/<name>``). ``python -m huscf_mpi.results.layout_docs docs/results.md`` rewrites
them in place (``--check``: exit 1 and name the stale ones instead); ``tests/test_layout_docs.py``
runs the check.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from . import schema

BLOCK = re.compile(r"(<!-- layout: (?P<sel>[^>]*?) -->\n)(?P<body>.*?)(<!-- /layout -->)", re.S)


def selected(selectors: str) -> list[schema.Dataset | schema.Table]:
    """Datasets and tables of ``schema.LAYOUT`` named by, or under, any of ``selectors`` (space-separated)."""
    sels = selectors.split()
    return [e for e in schema.LAYOUT if isinstance(e, (schema.Dataset, schema.Table))
            and any(e.name == s or e.name.startswith(s + "/") for s in sels)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or "-"


def render(selectors: str) -> str:
    """Markdown for the entries of ``selectors``: one table of the datasets, then each table's columns."""
    entries = selected(selectors)
    out = []
    datasets = [e for e in entries if isinstance(e, schema.Dataset)]
    if datasets:
        by_strategy = any(d.strategy for d in datasets)
        out.append("| name | shape | dtype | unit | meaning |" + (" strategy |" if by_strategy else ""))
        out.append("|---|---|---|---|---|" + ("---|" if by_strategy else ""))
        for d in datasets:
            out.append(f"| `{d.name}` | `{d.shape}` | {d.dtype} | {_cell(d.unit)} | {_cell(d.meaning)} |"
                       + (f" {_cell(d.strategy)} |" if by_strategy else ""))
    for t in (e for e in entries if isinstance(e, schema.Table)):
        out.append("")
        out.append(f"`/{t.name}` (table, one row per {t.row}): {t.meaning}.")
        out.append("")
        out.append("| column | dtype | unit | meaning |")
        out.append("|---|---|---|---|")
        for c in t.columns:
            out.append(f"| `{c.name}` | {c.dtype} | {_cell(c.unit)} | {_cell(c.meaning)} |")
    return "\n".join(out).lstrip("\n") + "\n"


def update(text: str) -> tuple[str, list[str]]:
    """``text`` with every block regenerated, and the selectors of the blocks that changed."""
    stale = []

    def fill(m: re.Match) -> str:
        body = render(m["sel"])
        if body != m["body"]:
            stale.append(m["sel"])
        return m[1] + body + m[4]

    return BLOCK.sub(fill, text), stale


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    if len(paths) != 1:
        print("usage: python -m huscf_mpi.results.layout_docs [--check] docs/results.md", file=sys.stderr)
        return 2
    path = Path(paths[0])
    text, stale = update(path.read_text())
    if check:
        for sel in stale:
            print(f"{path}: layout block {sel!r} differs from huscf_mpi.results.schema.LAYOUT", file=sys.stderr)
        return 1 if stale else 0
    path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
