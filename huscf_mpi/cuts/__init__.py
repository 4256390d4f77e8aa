"""Per-client cut selection (SPEC §5): block costs, device profiles, latency model, DEAP GA.

Names load on first use, so a client rank that imports one submodule (``cuts.emulation``,
``cuts.devices``) does not import DEAP or torch's FLOP counter with it (issue 7).
"""
from importlib import import_module

_WHERE = {
    "costs": ("COST_MODES", "BlockCosts", "block_costs"),
    "devices": ("DeviceProfile", "assign_profiles", "load_devices"),
    "ga": ("GAConfig", "GAResult", "run_ga"),
    "latency": ("PASSES", "TERMS", "LatencyRules", "iteration_latency", "latency_breakdown", "latency_fitness"),
    "report": ("CutSelection", "cuts_command", "format_selection", "select_cuts", "select_for_profiles"),
    "search": ("GeneSpace", "exhaustive_best", "uniform_assignments"),
}
_MODULE = {name: module for module, names in _WHERE.items() for name in names}
__all__ = list(_MODULE)


def __getattr__(name: str):
    if name not in _MODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_MODULE[name]}", __name__), name)
