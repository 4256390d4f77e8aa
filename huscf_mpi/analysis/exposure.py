"""Who saw what: the ``/exposure`` table of a result file, read as flows of payload classes.

``/exposure`` has one row per (payload, plane, sender, receiver) with ``messages`` and ``bytes``
(layout: :mod:`huscf_mpi.results.schema`). Only the ``protocol`` and ``evaluation`` planes count
here (``report`` and ``setup`` are the harness's own traffic). Pure functions of a DataFrame:

- :func:`exposure_flows`: (payload, sender, receiver, plane) -> messages, bytes, in payload order;
- :func:`exposure_summary`: one compact string for a table cell, e.g.
  ``"smashed c↔s; grads c↔s; params c↔s"``;
- :func:`exposure_lines`: the "who saw what" section of ``huscf-mpi show``.

Abbreviations of :func:`exposure_summary`: payload classes ``raw`` raw_images, ``labels``
real_labels, ``synth`` synthetic_images, ``sampled`` sampled_labels, ``smashed`` smashed_data,
``grads`` image_gradients, ``params`` parameters, ``losses``, ``metrics``, ``probe``; roles
``c`` client, ``s`` server; ``c→s`` client to server, ``s→c`` server to client, ``c↔s`` both,
``c→c`` client to client. A class not named never left its owner on those planes; ``none``
means no class did.
"""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from ..results import schema

PAYLOAD_ABBREV = {
    "raw_images": "raw", "real_labels": "labels", "synthetic_images": "synth", "sampled_labels": "sampled",
    "smashed_data": "smashed", "image_gradients": "grads", "parameters": "params", "losses": "losses",
    "metrics": "metrics", "probe": "probe", "control": "control",
}
ROLE_ABBREV = {"client": "c", "server": "s"}
_DIRECTION_ORDER = (("client", "server"), ("server", "client"), ("client", "client"), ("server", "server"))


def _payload_rank(payload: str) -> tuple[int, str]:
    order = schema.PAYLOADS
    return (order.index(payload), "") if payload in order else (len(order), payload)


def exposure_flows(df: pd.DataFrame, planes=schema.EXPOSURE_PLANES) -> pd.DataFrame:
    """Rows of ``df`` on ``planes`` that moved anything, summed per (payload, sender, receiver, plane).

    Returns a DataFrame with columns payload, sender, receiver, plane, messages, bytes, sorted by
    payload (:data:`~huscf_mpi.results.schema.PAYLOADS` order, unknown classes after, by name),
    then direction (client → server first) and plane (as in ``planes``).
    """
    cols = ["payload", "sender", "receiver", "plane", "messages", "bytes"]
    if df is None or not len(df):
        return pd.DataFrame(columns=cols)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"/exposure lacks columns {missing}")
    d = df[cols].copy()
    for c in ("payload", "sender", "receiver", "plane"):
        d[c] = d[c].astype(str)
    d = d[d["plane"].isin(list(planes))]
    d = d.groupby(["payload", "sender", "receiver", "plane"], as_index=False, sort=False)[["messages", "bytes"]].sum()
    d = d[(d["messages"] > 0) | (d["bytes"] > 0)]

    def key(row) -> tuple:
        direction = (row.sender, row.receiver)
        where = _DIRECTION_ORDER.index(direction) if direction in _DIRECTION_ORDER else len(_DIRECTION_ORDER)
        plane = list(planes).index(row.plane)
        return (*_payload_rank(row.payload), where, row.sender, row.receiver, plane)

    rows = sorted(d.itertuples(index=False), key=key)
    return pd.DataFrame([r._asdict() for r in rows], columns=cols)


def _directions(pairs: list[tuple[str, str]]) -> list[str]:
    pairs = list(dict.fromkeys(pairs))
    out = []
    if ("client", "server") in pairs and ("server", "client") in pairs:
        out.append("c↔s")
        pairs = [p for p in pairs if p not in (("client", "server"), ("server", "client"))]
    for s, r in pairs:
        out.append(f"{ROLE_ABBREV.get(s, s)}→{ROLE_ABBREV.get(r, r)}")
    return out


def exposure_summary(df: pd.DataFrame) -> str:
    """Compact who-saw-what of one run's ``/exposure`` table (protocol and evaluation planes).

    One ``"<payload> <directions>"`` part per payload class that left its owner, joined by
    ``"; "``, in :data:`~huscf_mpi.results.schema.PAYLOADS` order, e.g.
    ``"smashed c↔s; params c↔s; synth s→c"``; a class sent both ways between client and server
    is written ``c↔s`` rather than ``c→s,s→c``. ``"none"`` when nothing left its owner.
    Abbreviations: see the module docstring.
    """
    flows = exposure_flows(df)
    if not len(flows):
        return "none"
    parts = []
    for payload in dict.fromkeys(flows["payload"]):
        sub = flows[flows["payload"] == payload]
        pairs = list(zip(sub["sender"], sub["receiver"]))
        parts.append(f"{PAYLOAD_ABBREV.get(payload, payload)} {','.join(_directions(pairs))}")
    return "; ".join(parts)


def exposure_lines(df: pd.DataFrame, fmt_bytes: Callable[[float], str] = lambda n: f"{int(n)} B") -> list[str]:
    """The "who saw what" section of ``huscf-mpi show``: a heading and one indented line per class.

    Every class of :data:`~huscf_mpi.results.schema.EXPOSURE_PAYLOADS` gets a line ("none left
    its owner" when absent); other classes only when they moved. Each flow reads
    ``"client → server 12 msgs 3.1 MiB"``; flows on the evaluation plane end in ``[evaluation]``.
    """
    flows = exposure_flows(df)
    lines = ["who saw what (protocol and evaluation planes, from /exposure):"]
    payloads = list(dict.fromkeys([*schema.EXPOSURE_PAYLOADS, *flows["payload"]]))
    for payload in payloads:
        sub = flows[flows["payload"] == payload]
        if not len(sub):
            lines.append(f"  {payload}: none left its owner")
            continue
        parts = []
        for row in sub.itertuples(index=False):
            tag = "" if row.plane == "protocol" else f" [{row.plane}]"
            parts.append(f"{row.sender} → {row.receiver} {int(row.messages)} msgs {fmt_bytes(row.bytes)}{tag}")
        lines.append(f"  {payload}: " + "; ".join(parts))
    return lines
