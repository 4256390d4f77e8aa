"""Genetic algorithm over per-client cuts, on DEAP (SPEC §5, "GA").

Genome: one gene group per client, one integer gene per entry of ``choices`` (for cuts: per
network, an index into that network's ``valid_net_cuts``, so an invalid cut cannot be encoded);
a genome is the flat sequence ``[client0 gene0, client0 gene1, client1 gene0, ...]``, stored as
an ``array.array("H")`` so the whole population becomes one NumPy array without a Python loop.

One generation (DEAP operators on the individuals; fitness of the whole population in one call):

1. tournament selection of P parents (``tools.selTournament``, size ``tournament``);
2. consecutive pairs cross over with probability ``cx_prob``, by ``tools.cxUniform``
   (swap prob 0.5 per gene) or ``tools.cxTwoPoint``, each with probability 1/2;
3. every gene mutates with probability ``mut_prob_per_gene`` to a uniformly drawn valid value
   (which may be its current value) — the distribution of ``tools.mutUniformInt`` applied to
   every individual, but the mutated positions are found by geometric skips over the whole
   offspring (about P·L·p draws instead of P·L coin flips, the GA's former hot spot);
4. the offspring are decoded to an int array (P, N, width) and scored by one ``fitness`` call;
5. group-consensus step (only when ``run_ga`` is given ``groups``, labels of clients the
   fitness cannot tell apart, e.g. one device profile): whenever a generation improves on the
   best so far (and for the initial population's best), that individual is improved by steepest descent over "group moves" — set one
   gene of *all* clients of one group to one value — all candidates of a step scored in one
   fitness call. Why: the latency is a max over clients, so making a slow profile's clients
   change their cut pays off only once *all* of them have changed; single-gene mutations see
   a plateau there (on the 80-client paper problem, without this step the GA ended 4.3 %
   above the optimum for 2 of 3 seeds, and without the uniform seeds as well, 174-551 %
   above it; see benchmarks/README.md). In the latency model, moving every client of a group to the largest head and
   smallest tail found among them never makes things worse (server blocks get fewer
   participants; no arrival or finish time that was not already there appears), and with a
   pinned server block that cut is valid, so an optimum exists in which each group shares
   one cut per network. The step reaches such points directly; the per-client genome still
   lets the GA keep groups mixed where that is as good;
6. elitism: if the best individual so far beats every offspring, it replaces the worst one,
   so the best fitness never gets worse from one generation to the next.

The initial population is uniform random, except that (by default, ``seed_uniform``) its first
individuals are the "all clients alike" assignments, so with elitism the answer is never worse
than the best uniform assignment. Fitness is minimised (seconds per iteration).

Randomness: DEAP's operators draw from Python's global ``random`` module, so ``run_ga`` seeds
it with ``seeding.int_seed(seed, seeding.GA)`` and restores its previous state on return (not
thread-safe: do not run two GAs concurrently in one process). Same seed, same answer.
"""
from __future__ import annotations

import array
import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Hashable, Sequence

import numpy as np
from deap import base, creator, tools

from .. import seeding
from .search import GeneSpace

# DEAP's creator registers classes module-globally; create them once per process.
if not hasattr(creator, "HuscfCutFitness"):
    creator.create("HuscfCutFitness", base.Fitness, weights=(-1.0,))
if not hasattr(creator, "HuscfCutIndividual"):
    creator.create("HuscfCutIndividual", array.array, typecode="H", fitness=creator.HuscfCutFitness)
Individual = creator.HuscfCutIndividual


@dataclass(frozen=True)
class GAConfig:
    """GA settings; defaults are the reference's (SPEC §5).

    Attributes
    ----------
    population : individuals per generation (>= 2).
    generations : generations to run at most (>= 0).
    tournament : tournament size of selection.
    cx_prob : probability that a pair of parents crosses over.
    mut_prob_per_gene : probability that a gene is redrawn.
    stall_generations : stop after this many generations without improving the best fitness;
        None runs all ``generations``.
    seed : root seed; the GA draws from ``seeding.int_seed(seed, seeding.GA)``.
    seed_uniform : put the uniform assignments into the initial population.
    group_search : run the group-consensus step on each new best individual, when ``run_ga``
        is given ``groups``.
    """

    population: int = 1000
    generations: int = 1000
    tournament: int = 5
    cx_prob: float = 0.7
    mut_prob_per_gene: float = 0.01
    stall_generations: int | None = 100
    seed: int = 0
    seed_uniform: bool = True
    group_search: bool = True

    def __post_init__(self):
        if self.population < 2 or self.generations < 0 or self.tournament < 1:
            raise ValueError("need population >= 2, generations >= 0 and tournament >= 1")
        if not (0 <= self.cx_prob <= 1 and 0 <= self.mut_prob_per_gene <= 1):
            raise ValueError("cx_prob and mut_prob_per_gene must lie in [0, 1]")
        if self.stall_generations is not None and self.stall_generations < 1:
            raise ValueError("stall_generations must be >= 1 or None")


@dataclass
class GAResult:
    """Outcome of ``run_ga``.

    Attributes
    ----------
    best : int64 (N, width), the best assignment decoded (cuts: ``(g_head, g_tail, d_head, d_tail)``).
    best_genes : int64 (N, K), its gene indices.
    best_latency : its fitness (seconds per iteration for the latency model).
    history : ``{"best": float64 (G+1,), "mean": float64 (G+1,)}``, per generation with entry 0
        the initial population; "best" is the best so far (elitism makes it the generation's best).
    generations_run : generations after the initial one.
    stopped_early : True when ``stall_generations`` ended the run before ``generations``.
    seconds : wall time of the run.
    """

    best: np.ndarray
    best_genes: np.ndarray
    best_latency: float
    history: dict[str, np.ndarray] = field(default_factory=dict)
    generations_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


def _keep_elite(population: list, values: np.ndarray, elite, elite_value: float, clone) -> None:
    """Elitism: if ``elite`` beats every member, it replaces the worst one (in place)."""
    if elite_value < values.min():
        worst = int(np.argmax(values))
        population[worst] = clone(elite)
        population[worst].fitness.values = (elite_value,)
        values[worst] = elite_value


def _group_members(groups, n_clients: int) -> list[np.ndarray]:
    labels = list(groups)
    if len(labels) != n_clients:
        raise ValueError(f"groups must label all {n_clients} clients, got {len(labels)}")
    index: dict = {}
    for i, label in enumerate(labels):
        index.setdefault(label, []).append(i)
    return [np.array(v) for v in index.values()]


def _consensus_moves(genes: np.ndarray, members: list[np.ndarray], sizes: np.ndarray) -> np.ndarray:
    """Every assignment that sets one gene of *all* members of one group to one value, int64 (C, N, K).

    Moves that change nothing are left out.
    """
    moves = []
    for idx in members:
        for k, size in enumerate(sizes.tolist()):
            for value in range(size):
                if (genes[idx, k] == value).all():
                    continue
                move = genes.copy()
                move[idx, k] = value
                moves.append(move)
    return np.array(moves, dtype=np.int64).reshape(len(moves), *genes.shape)


def _mutate_population(population: list, up: list[int], indpb: float) -> None:
    """Redraw each gene of each individual with probability ``indpb``, uniformly in 0..up[j].

    Walks the flattened population by geometric gaps, which lands on every gene independently
    with probability ``indpb``, as a coin per gene would. In place; draws from ``random``.
    """
    length, total = len(up), len(population) * len(up)
    if indpb <= 0 or total == 0:
        return
    log_q = math.log1p(-indpb) if indpb < 1 else -math.inf
    pos = -1
    while True:
        # Gap to the next mutated gene ~ Geometric(indpb): floor(log(U) / log(1 - p)) genes skipped.
        pos += 1 + (int(math.log(1.0 - random.random()) / log_q) if log_q != -math.inf else 0)
        if pos >= total:
            return
        i, j = divmod(pos, length)
        population[i][j] = random.randint(0, up[j])


@contextlib.contextmanager
def _seeded_global_random(seed: int):
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def run_ga(fitness: Callable[[np.ndarray], np.ndarray], choices: Sequence[Sequence], n_clients: int,
           config: GAConfig = GAConfig(), groups: Sequence[Hashable] | None = None) -> GAResult:
    """Minimise ``fitness`` over per-client gene assignments.

    Parameters
    ----------
    fitness : maps decoded assignments int64 (P, N, width) to float (P,), lower is better
        (e.g. ``latency.latency_fitness``); called once per generation with the whole population.
    choices : per gene, the allowed values (see ``search.GeneSpace``); for cuts
        ``[valid_net_cuts(L_g, pinned_g), valid_net_cuts(L_d, pinned_d)]``.
    n_clients : N.
    config : GA settings.
    groups : optional label per client (length N) marking clients the fitness cannot tell apart
        (same device profile); enables the group-consensus step (module docstring) when
        ``config.group_search``.

    Returns
    -------
    GAResult.

    Raises
    ------
    ValueError : ``n_clients < 1``, ``groups`` of the wrong length, or ``fitness`` returned a
        wrong shape or a non-finite value.
    """
    if n_clients < 1:
        raise ValueError("need n_clients >= 1")
    started = time.perf_counter()
    space = GeneSpace(choices)
    if space.sizes.max() > 1 << 16:
        raise ValueError("at most 65536 choices per gene")  # genes are stored as uint16
    k = space.n_genes
    length = n_clients * k
    up = np.tile(space.sizes - 1, n_clients).tolist()

    def evaluate(population: list) -> np.ndarray:
        genes = np.frombuffer(b"".join(population), dtype=np.uint16).reshape(len(population), n_clients, k)
        values = np.asarray(fitness(space.decode(genes)), dtype=np.float64)
        if values.shape != (len(population),) or not np.isfinite(values).all():
            raise ValueError(f"fitness must return {len(population)} finite values, got shape {values.shape}")
        for ind, v in zip(population, values.tolist()):
            ind.fitness.values = (v,)
        return values

    toolbox = base.Toolbox()
    toolbox.register("individual", tools.initIterate, Individual, lambda: [random.randint(0, u) for u in up])
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    # Genes are ints (immutable): a shallow copy is a full copy, and far cheaper than deepcopy.
    toolbox.register("clone", Individual)
    toolbox.register("select", tools.selTournament, tournsize=config.tournament)
    toolbox.register("cx_uniform", tools.cxUniform, indpb=0.5)
    toolbox.register("cx_two_point", tools.cxTwoPoint)
    toolbox.register("mutate", _mutate_population, up=up, indpb=config.mut_prob_per_gene)

    members = _group_members(groups, n_clients) if config.group_search and groups is not None else []

    def polish(ind, value: float):
        """Group-consensus descent from ``ind``: best single group move until none improves."""
        genes = np.array(ind.tolist(), dtype=np.int64).reshape(n_clients, k)
        improved = False
        while members:
            moves = _consensus_moves(genes, members, space.sizes)
            if not len(moves):
                break
            scores = np.asarray(fitness(space.decode(moves)), dtype=np.float64)
            if scores.shape != (len(moves),) or not np.isfinite(scores).all():
                raise ValueError(f"fitness must return {len(moves)} finite values, got shape {scores.shape}")
            j = int(np.argmin(scores))
            if not scores[j] < value * (1 - 1e-12):
                break
            genes, value, improved = moves[j], float(scores[j]), True
        return (Individual(genes.ravel().tolist()) if improved else ind), value

    with _seeded_global_random(seeding.int_seed(config.seed, seeding.GA)):
        population = toolbox.population(n=config.population)
        if config.seed_uniform:
            for i, combo in enumerate(space.per_client_combinations()[:config.population]):
                population[i] = Individual(np.tile(combo, n_clients).tolist())
        values = evaluate(population)
        i = int(np.argmin(values))
        elite, elite_value = polish(toolbox.clone(population[i]), float(values[i]))
        _keep_elite(population, values, elite, elite_value, toolbox.clone)
        best_hist, mean_hist = [elite_value], [float(values.mean())]
        stall, stopped_early, generation = 0, False, 0
        for generation in range(1, config.generations + 1):
            offspring = [toolbox.clone(ind) for ind in toolbox.select(population, config.population)]
            for a, b in zip(offspring[::2], offspring[1::2]):
                if random.random() < config.cx_prob:
                    if length < 2 or random.random() < 0.5:
                        toolbox.cx_uniform(a, b)
                    else:
                        toolbox.cx_two_point(a, b)
            toolbox.mutate(offspring)
            values = evaluate(offspring)
            previous = elite_value
            i = int(np.argmin(values))
            if values[i] < elite_value:
                elite, elite_value = polish(toolbox.clone(offspring[i]), float(values[i]))
            _keep_elite(offspring, values, elite, elite_value, toolbox.clone)
            population = offspring
            best_hist.append(elite_value)
            mean_hist.append(float(values.mean()))
            stall = 0 if elite_value < previous * (1 - 1e-12) else stall + 1  # float-noise "gains" don't count
            if config.stall_generations is not None and stall >= config.stall_generations:
                stopped_early = generation < config.generations
                break

    best_genes = np.array(elite.tolist(), dtype=np.int64).reshape(n_clients, k)
    return GAResult(best=space.decode(best_genes), best_genes=best_genes, best_latency=elite_value,
                    history={"best": np.array(best_hist), "mean": np.array(mean_hist)},
                    generations_run=generation, stopped_early=stopped_early,
                    seconds=time.perf_counter() - started)
