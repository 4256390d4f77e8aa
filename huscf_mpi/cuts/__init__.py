"""Per-client cut selection (SPEC §5): block costs, device profiles, latency model, DEAP GA."""
from .costs import COST_MODES, BlockCosts, block_costs
from .devices import DeviceProfile, assign_profiles, load_devices
from .ga import GAConfig, GAResult, run_ga
from .latency import PASSES, TERMS, iteration_latency, latency_breakdown, latency_fitness
from .report import CutSelection, cuts_command, format_selection, select_cuts, select_for_profiles
from .search import GeneSpace, exhaustive_best, uniform_assignments

__all__ = [
    "COST_MODES", "BlockCosts", "block_costs",
    "DeviceProfile", "assign_profiles", "load_devices",
    "GAConfig", "GAResult", "run_ga",
    "PASSES", "TERMS", "iteration_latency", "latency_breakdown", "latency_fitness",
    "CutSelection", "cuts_command", "format_selection", "select_cuts", "select_for_profiles",
    "GeneSpace", "exhaustive_best", "uniform_assignments",
]
