"""Grouping runs into table rows / plot lines, and labelling the groups.

A *configuration* is a run's resolved config without ``seed``, ``output`` and ``name``, plus its
strategy (``Run.key_config``). Runs with equal configurations form one :class:`Group`.

Labels (:func:`label_groups`), used by tables and plots alike:

- one strategy among the groups: ``field=value, ...`` for the config fields that differ between
  groups, or the runs' names when none does (as before strategies existed);
- several strategies: the strategy's readable name (``STRATEGY_NAMES``: HuSCF-GAN, FedGAN,
  MD-GAN, Centralized) first; then, where groups of one strategy differ by run name (ablations
  such as ``huscf-noclust``), the name in parentheses: ``HuSCF-GAN (huscf-noclust)``; then the
  config fields that still differ between groups with the same head, e.g.
  ``FedGAN, data.scenario=3``;
- ``by`` given: those fields, in that order; ``strategy`` and ``name`` may be among them and
  make up the head as above.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .model import DASH
from .runs import DEFAULT_STRATEGY, Run
from ..registry import TITLES

# Readable strategy names for labels and legends; unknown ids are shown as they are.
STRATEGY_NAMES = TITLES
# Pseudo-fields of ``by``: not config fields, but the head of a label.
STRATEGY_FIELD, NAME_FIELD = "strategy", "name"


def strategy_name(strategy: str) -> str:
    """Readable name of a strategy id: ``"fedgan" -> "FedGAN"``; unknown ids unchanged."""
    return STRATEGY_NAMES.get(strategy, strategy)


@dataclass
class Group:
    """Runs of one configuration (differing only in ``IGNORED_KEYS``)."""

    key_config: dict
    runs: list[Run] = field(default_factory=list)
    label: str = ""

    @property
    def seeds(self) -> list:
        return [r.seed for r in self.runs]

    @property
    def incomplete(self) -> int:
        return sum(not r.complete for r in self.runs)

    @property
    def scenario(self) -> int:
        data = self.key_config.get("data") or {}
        return int(data.get("scenario", 1)) if isinstance(data, dict) else 1

    @property
    def strategy(self) -> str:
        return str(self.key_config.get("strategy", DEFAULT_STRATEGY))

    @property
    def names(self) -> str:
        """The runs' names, ``/``-joined in order of first appearance."""
        return "/".join(dict.fromkeys(r.name for r in self.runs))


def group_runs(runs: list[Run]) -> list[Group]:
    """Group runs by configuration, in order of first appearance."""
    groups: dict[str, Group] = {}
    for run in runs:
        groups.setdefault(run.key, Group(run.key_config)).runs.append(run)
    return list(groups.values())


def _flatten(tree, prefix: str = "") -> dict[str, object]:
    """Dotted leaves of a config; lists are leaves."""
    if isinstance(tree, dict) and tree:
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


_MISSING = object()


def _get(tree, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def format_value(value) -> str:
    """Compact text of a config value: ``[2,4,1,5]``, ``{mnist:2}``, ``0.25``, ``uniform-max``."""
    if value is _MISSING:
        return DASH
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def differing_fields(groups: list[Group], collapse: int = 3) -> list[str]:
    """Dotted config fields whose values differ between groups.

    Leaves sharing a parent are reported as that parent when more than ``collapse`` of them
    differ (e.g. ``cuts`` rather than ``cuts.1`` ... ``cuts.100``).
    """
    flats = [_flatten(g.key_config) for g in groups]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    differ = [k for k in keys if len({json.dumps(f.get(k, "<missing>"), sort_keys=True, default=str)
                                       for f in flats}) > 1]
    by_parent: dict[str, list[str]] = {}
    for k in differ:
        by_parent.setdefault(k.rsplit(".", 1)[0] if "." in k else k, []).append(k)
    out: list[str] = []
    for k in differ:
        parent = k.rsplit(".", 1)[0] if "." in k else k
        name = parent if len(by_parent[parent]) > collapse else k
        if name not in out:
            out.append(name)
    return out


def _head(strategy: str | None, names: str | None) -> str:
    """``"HuSCF-GAN (huscf-noclust)"``, ``"FedGAN"`` or ``"huscf-noclust"``, from the parts shown."""
    head = strategy_name(strategy) if strategy is not None else ""
    if names:
        head = f"{head} ({names})" if head else names
    return head


def _join(head: str, parts: list[str]) -> str:
    return ", ".join([p for p in [head, *parts] if p])


def _label_by(groups: list[Group], by: list[str]) -> None:
    for f in by:
        if f in (STRATEGY_FIELD, NAME_FIELD):
            continue
        if all(_get(g.key_config, f) is _MISSING for g in groups):
            known = sorted({k.split(".")[0] for g in groups for k in g.key_config})
            raise ValueError(f"--by {f}: no run has this config field; top-level fields are {', '.join(known)} "
                             "(use dots for nested ones, e.g. data.scenario; also: name)")
    fields = [f for f in by if f not in (STRATEGY_FIELD, NAME_FIELD)]
    for g in groups:
        head = _head(g.strategy if STRATEGY_FIELD in by else None, g.names if NAME_FIELD in by else None)
        g.label = _join(head, [f"{f}={format_value(_get(g.key_config, f))}" for f in fields])


def _label_strategies(groups: list[Group]) -> None:
    """Several strategies: strategy name, run names where they tell a strategy's groups apart, fields."""
    by_strategy: dict[str, list[Group]] = {}
    for g in groups:
        by_strategy.setdefault(g.strategy, []).append(g)
    named = {s for s, gs in by_strategy.items() if len({g.names for g in gs}) > 1}
    heads = [_head(g.strategy, g.names if g.strategy in named else None) for g in groups]
    classes: dict[str, list[Group]] = {}
    for g, head in zip(groups, heads):
        classes.setdefault(head, []).append(g)
    fields = list(dict.fromkeys(f for members in classes.values() if len(members) > 1
                                for f in differing_fields(members)))
    for g, head in zip(groups, heads):
        crowded = len(classes[head]) > 1  # there a missing field must show, or labels could repeat
        parts = [f"{f}={format_value(v)}" for f in fields
                 if (v := _get(g.key_config, f)) is not _MISSING or crowded]
        g.label = _join(head, parts)


def label_groups(groups: list[Group], by: list[str] | None = None) -> list[str]:
    """Set and return each group's row label (rules in the module docstring).

    ``by`` names dotted config fields (``cuts``, ``data.scenario``, ``model.width``), and may
    include ``strategy`` and ``name``; by default the labels follow the module docstring.

    Raises
    ------
    ValueError
        A field in ``by`` that no run's config has.
    """
    if by:
        _label_by(groups, list(by))
    elif len({g.strategy for g in groups}) > 1:
        _label_strategies(groups)
    else:
        fields = differing_fields(groups)
        for g in groups:
            if fields:
                g.label = ", ".join(f"{f}={format_value(_get(g.key_config, f))}" for f in fields)
            else:
                g.label = g.names
    return [g.label for g in groups]
