"""Rendering a :class:`~.model.Table` as text: GitHub markdown, csv, or a LaTeX booktabs tabular.

Hand-written rather than pandas: ``DataFrame.to_markdown`` needs ``tabulate`` (not installed,
not a dependency), and ``to_latex`` needs jinja2 (here only as torch's dependency) while its
Styler output would differ from these tables (bold best cells, a domain-spanning header row with
``cmidrule``, "–" for missing values).

md and latex bold the best mean of each column (``Table.best``); csv lists, per row, the column
ids where it is best in its ``best`` column, and has a ``strategy`` column. Text columns (e.g.
"who saw what") follow the numeric ones and are never bold.
"""
from __future__ import annotations

import csv
import io
import math

from .model import DASH, Column, Row, Table

FORMATS = ("md", "csv", "latex")


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def _cell_text(row: Row, col: Column, pm: str) -> str:
    cell = row.cells.get(col.id)
    if cell is None:
        return DASH
    d = col.metric.digits
    text = _number(cell.mean, d)
    if not math.isnan(cell.std):
        text += f" {pm} {_number(cell.std, d)}"
    if cell.count < row.n:
        text += f" (n={cell.count})"
    return text


def _texts(table: Table, row: Row) -> list[str]:
    return [row.texts.get(c.id, DASH) for c in table.text_columns]


def _md(table: Table) -> str:
    head = ["configuration", "n"] + [c.header for c in table.columns] + [c.header for c in table.text_columns]
    align = ["---"] * 2 + ["---:"] * len(table.columns) + ["---"] * len(table.text_columns)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for i, row in enumerate(table.rows):
        cells = []
        for c in table.columns:
            text = _cell_text(row, c, "±")
            cells.append(f"**{text}**" if i in table.best.get(c.id, ()) else text)
        cells += [t.replace("|", "\\|") for t in _texts(table, row)]
        lines.append("| " + " | ".join([row.label.replace("|", "\\|"), str(row.n)] + cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", DASH: "--",
                  "→": r"$\to$", "↔": r"$\leftrightarrow$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(table: Table) -> str:
    cols, texts = table.columns, table.text_columns
    spec = "lr" + "r" * len(cols) + "l" * len(texts)
    lines = [r"\begin{tabular}{" + spec + "}", r"\toprule"]
    domains = list(dict.fromkeys(c.domain for c in cols))
    if any(domains):  # a first header row spanning each domain's columns
        top, rules, start = ["", ""], [], 3
        for d in domains:
            span = sum(c.domain == d for c in cols)
            top.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(d)}}}" if d else
                       " & ".join([""] * span) if span > 1 else "")
            if d:
                rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        top += [""] * len(texts)
        lines.append(" & ".join(top) + r" \\")
        lines.append(" ".join(rules))
    head = ["configuration", "$n$"] + [latex_escape(c.metric.header) for c in cols] + \
        [latex_escape(c.header) for c in texts]
    lines += [" & ".join(head) + r" \\", r"\midrule"]
    for i, row in enumerate(table.rows):
        cells = []
        for c in cols:
            text = latex_escape(_cell_text(row, c, "\x00")).replace("\x00", r"$\pm$")
            cells.append(rf"\textbf{{{text}}}" if i in table.best.get(c.id, ()) else text)
        cells += [latex_escape(t) for t in _texts(table, row)]
        lines.append(" & ".join([latex_escape(row.label), str(row.n)] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["configuration", "strategy", "n", "seeds", "incomplete"]
    for c in table.columns:
        header += [f"{c.id}_mean", f"{c.id}_std"]
    header += [c.id for c in table.text_columns]
    w.writerow(header + ["best"])

    def num(x: float) -> str:
        return "" if x is None or math.isnan(x) else repr(float(x))

    for i, row in enumerate(table.rows):
        out = [row.label, row.strategy, row.n, " ".join(str(s) for s in row.seeds), row.incomplete]
        for c in table.columns:
            cell = row.cells.get(c.id)
            out += [num(cell.mean), num(cell.std)] if cell else ["", ""]
        out += [row.texts.get(c.id, "") for c in table.text_columns]
        out.append(";".join(c.id for c in table.columns if i in table.best.get(c.id, ())))
        w.writerow(out)
    return buf.getvalue()


def render(table: Table, fmt: str = "md") -> str:
    """Text of ``table`` in ``fmt`` ("md", "csv" or "latex")."""
    renderers = {"md": _md, "csv": _csv, "latex": _latex}
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return renderers[fmt](table)
