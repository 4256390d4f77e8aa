"""Human-readable summary of a result file (``python -m huscf_mpi.results.show FILE``)."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from . import schema
from .reader import ResultFile


def human_bytes(n: float) -> str:
    """``n`` bytes with a binary prefix, e.g. ``1536 -> "1.5 KiB"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _indent(text: str, pad: str = "  ") -> list[str]:
    return [pad + line for line in text.splitlines()]


def _rounds_table(df: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    out["round"] = df["round"] if "round" in df else df.index
    for name, label in (("loss_d", "D loss"), ("loss_g", "G loss")):
        cols = [c for c in df.columns if c == name or c.startswith(name + "[")]
        if cols:
            out[label] = df[cols].astype(float).mean(axis=1)
    for c in df.columns:
        if c.startswith("generation_score"):
            out[c.replace("generation_score", "GS")] = df[c]
    if "adjusted_rand_index" in df:
        out["ARI"] = df["adjusted_rand_index"]
    if "wall_seconds" in df:
        out["wall s"] = df["wall_seconds"]
    if len(out) > max_rows:  # long runs: first and last rounds only
        half = max_rows // 2
        out = pd.concat([out.head(half), out.tail(max_rows - half)])
    return out


def _sum(rf: ResultFile, name: str) -> float | None:
    key = f"{schema.ROUNDS}/{name}"
    if key not in rf:
        return None
    return float(np.nansum(rf.array(key).astype(float)))


def _ledger_lines(ledger: pd.DataFrame) -> list[str]:
    """Messages received, by kind: the server's first, then the clients' (files with ``receiver``)."""
    if not len(ledger):
        return []
    ledger = ledger.copy()
    for column, default in schema.LEDGER_DEFAULTS.items():
        if column not in ledger:
            ledger[column] = default
    ledger["label"] = [k if p in ("", schema.LEDGER_DEFAULTS["payload"]) else f"{k} ({p})"
                       for k, p in zip(ledger["kind"].astype(str), ledger["payload"].astype(str))]
    lines = []
    is_server = ledger["receiver"].astype(int) == 0
    for part, heading in ((ledger[is_server], "messages received by the server, by kind:"),
                          (ledger[~is_server], "messages received by the clients ({n} ranks), by kind:")):
        if not len(part):
            continue
        by_kind = part.groupby("label", sort=True)[["count", "bytes"]].sum()
        lines.append(heading.format(n=part["receiver"].nunique()))
        for kind, row in by_kind.iterrows():
            lines.append(f"  {kind}: {int(row['count'])} messages, {human_bytes(row['bytes'])} ({int(row['bytes'])} B)")
        lines.append(f"  total: {int(by_kind['count'].sum())} messages, {human_bytes(by_kind['bytes'].sum())}")
    return lines


def summary(path: str | Path, max_rounds: int = 20) -> str:
    """A multi-line, human-readable summary of the result file at ``path``.

    Works on incomplete runs too (``<path>.partial``, status "running", "failed" or
    "interrupted"), which are flagged INCOMPLETE with the error or signal on the status line,
    and where they stopped on the next but one. Missing sections are skipped. With an
    ``/exposure`` table, a "who saw what" section lists, per payload class, the messages and
    bytes that left their owner on the protocol and evaluation planes (and says "none left its
    owner" for the private and training classes that did not).

    Parameters
    ----------
    path : str or Path
        Result file (its ``.partial`` is used if only that exists).
    max_rounds : int, default 20
        Most rounds shown in the per-round table (first and last halves).
    """
    with ResultFile(path, allow_incomplete=True) as rf:
        prov = rf.provenance
        lines = [f"huscf-mpi result {rf.path}"]
        if rf.complete:
            lines.append(f"status: complete   schema: {rf.schema_version}")
        else:
            label = "" if rf.status == schema.STATUS_INTERRUPTED else "error: "
            err = f" -- {label}{rf.error}" if rf.error else ""
            lines.append(f"status: INCOMPLETE ({rf.status}){err}   schema: {rf.schema_version}")
        lines.append(f"created: {rf.created}   finished: {rf.finished or '-'}")
        stop = rf.stop
        if stop:
            signal = f", by {stop['stop_signal']}" if stop.get("stop_signal") else ""
            lines.append(f"stopped: during {stop.get('stop_phase', '?')}{signal}, {stop.get('rounds_done', '?')} round(s) "
                         f"written, {stop.get('iterations_done', '?')} iteration(s) of the next done")
        elif rf.status == schema.STATUS_RUNNING:
            lines.append("stopped: - (still running, or killed before it could say: SIGKILL, a lost node)")
        if "command" in prov:
            lines.append(f"command: {prov['command']}")
        hosts = prov.get("hosts") or []
        if "n_ranks" in prov or hosts:
            host_text = ", ".join(map(str, hosts)) if isinstance(hosts, list) else str(hosts)
            lines.append(f"ranks: {prov.get('n_ranks', '?')}   hosts: {host_text or '-'}")
        if prov.get("slurm_job_id"):
            lines.append(f"slurm job: {prov['slurm_job_id']}")
        parts = rf.table("resumes") if "resumes" in rf else None
        if parts is not None and len(parts) > 1:  # one row per start: the first, then each --resume
            lines.append("resumed: " + "; ".join(
                f"after round {int(p['round'])} at {p['started']}" + (f" (job {p['slurm_job_id']})" if p["slurm_job_id"]
                                                                      else "") for _, p in parts.iloc[1:].iterrows()))
        checkpoint = rf.attrs("checkpoint") if "checkpoint" in rf else {}
        if checkpoint and not rf.complete:
            lines.append(f"checkpoint: after round {checkpoint['round']} in {checkpoint['folder']}: continue with "
                         f"huscf-mpi train --resume {rf.path}")
        if "git_commit" in prov:
            dirty = " (dirty)" if prov.get("git_dirty") else ""
            lines.append(f"git: {prov['git_commit']}{dirty}")
        if "mpi_library" in prov:
            lines.append(f"MPI: {prov['mpi_library']}")
        if "seed" in prov:
            lines.append(f"seed: {prov['seed']}")
        domains = rf.domains
        if domains:
            lines.append(f"domains: {', '.join(domains)}")

        if schema.PARTITION in rf:
            part = rf.table(schema.PARTITION)
            lines.append(f"clients: {len(part)}")
            lines += _indent(part.to_string(index=False))

        if schema.CUT_VECTORS in rf:
            cuts = rf.array(schema.CUT_VECTORS)
            mode = rf.attrs(schema.CUTS).get("mode", "?")
            lines.append(f"cut vectors (g_head, g_tail, d_head, d_tail), mode {mode}:")
            for vec, n in sorted(Counter(tuple(int(x) for x in row) for row in cuts).items()):
                lines.append(f"  {vec} x {n}")

        df = rf.rounds()
        if len(df):
            lines.append(f"rounds: {len(df)}")
            table = _rounds_table(df, max_rounds)
            lines += _indent(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))

        final = rf.final()
        if final:
            lines.append("final metrics:")
            lines += _indent(pd.DataFrame(final).T.to_string(float_format=lambda v: f"{v:.4g}"))

        for d in rf.domains:
            if f"audio/{d}" in rf:
                clips, rate = rf.array(f"audio/{d}"), rf.attrs(f"audio/{d}")["sample_rate"]
                lines.append(f"audio: {d}, {len(clips)} Griffin-Lim clips of {clips.shape[1] / rate:.3f} s at {rate} Hz "
                             "(huscf-mpi plot FILE --out DIR writes them as WAV files)")

        if schema.LEDGER in rf:
            lines += _ledger_lines(rf.table(schema.LEDGER))

        if schema.EXPOSURE in rf:
            from ..analysis.exposure import exposure_lines

            lines += exposure_lines(rf.table(schema.EXPOSURE), human_bytes)

        totals = []
        for name in ("bytes_sent", "bytes_received"):
            value = _sum(rf, name)
            if value is not None:
                totals.append(f"{name.replace('_', ' ')} {human_bytes(value)} ({int(value)} B)")
        for name in ("compute_seconds", "comm_seconds", "wall_seconds"):
            value = _sum(rf, name)
            if value is not None:
                totals.append(f"{name.replace('_seconds', '')} {value:.3f} s")
        if totals:
            lines.append("totals over rounds and ranks: " + "; ".join(totals))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m huscf_mpi.results.show RESULT.h5", file=sys.stderr)
        return 2
    try:
        print(summary(args[0]))
    except (OSError, ValueError) as exc:  # missing/unreadable/newer-schema file: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
