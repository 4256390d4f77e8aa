"""The layout of a huscf-mpi result file (HDF5, schema version 1), defined once.

:data:`LAYOUT` names every dataset, table and attribute group a run may write, with its shape
(in the symbols of ``docs/results.md``: R rounds written, N clients, ...), dtype, unit and
meaning. :class:`~huscf_mpi.results.ResultWriter` refuses a name it does not declare, and the
dataset and table tables of ``docs/results.md`` (the user reference, which also describes the
status lifecycle and the attributes) are generated from it:
``python -m huscf_mpi.results.layout_docs docs/results.md`` rewrites them and
``tests/test_layout_docs.py`` fails when they differ. A strategy defined outside the package
declares its own ``rounds/<name>`` datasets (``Strategy.records``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1

STATUS_RUNNING = "running"
STATUS_COMPLETE = "complete"
STATUS_FAILED = "failed"
STATUS_INTERRUPTED = "interrupted"  # stopped by a signal (Ctrl-C, scancel, a wall-time limit)
STATUSES = (STATUS_RUNNING, STATUS_COMPLETE, STATUS_FAILED, STATUS_INTERRUPTED)
# How a run can end (ResultWriter.close); any of them but complete leaves the file at <path>.partial.
END_STATUSES = (STATUS_COMPLETE, STATUS_FAILED, STATUS_INTERRUPTED)

PARTIAL_SUFFIX = ".partial"

# Root attributes owned by the writer's lifecycle; set_attrs must not touch them.
ROOT_ATTRS = ("schema_version", "status", "error", "created", "finished")
# Root attributes of a run that did not complete: where it stopped (set by ResultWriter.close).
STOP_ATTRS = ("stop_phase", "rounds_done", "iterations_done", "stop_signal")

# Attr (on any group/dataset) listing which of its attrs hold JSON text.
JSON_ATTRS = "json_attrs"
# Attr on a table group listing its columns in order.
COLUMNS_ATTR = "columns"

PROVENANCE = "provenance"
PARTITION = "partition"
CUTS = "cuts"
CUT_VECTORS = "cuts/cut_vectors"
ROUNDS = "rounds"
SAMPLES = "samples"
LEDGER = "ledger"
EXPOSURE = "exposure"
FINAL = "final"
DOMAINS = "domains"
RUN = "run"
PREFLIGHT = "preflight"
PREFLIGHT_RANKS = "preflight_ranks"
CUT_PROFILES = "cuts/profiles"
AUDIO = "audio"

# Provenance attrs that hold JSON even when the caller passed them pre-encoded as text.
JSON_PROVENANCE_KEYS = ("versions", "hosts")

# Message planes and payload classes (the ledger's and exposure's ``plane`` / ``payload`` cells;
# the engine's huscf_mpi.comm.kinds.PLANES / PAYLOADS, repeated so that readers need no MPI code).
PLANES = ("protocol", "evaluation", "report", "setup")
PAYLOADS = ("raw_images", "real_labels", "synthetic_images", "sampled_labels", "smashed_data",
            "image_gradients", "parameters", "losses", "metrics", "probe", "control")
# "Who saw what" reads these planes (report and setup are the harness's own traffic) and always
# reports on these classes, saying so when one never left its owner.
EXPOSURE_PLANES = ("protocol", "evaluation")
EXPOSURE_PAYLOADS = PAYLOADS[:8]
# What a reader assumes for ledger columns that older files lack.
LEDGER_DEFAULTS = {"receiver": 0, "payload": "unknown"}

STR = "str"


# ---------------------------------------------------------------- the layout
# dtype: a numpy name ("int32", "uint8", ...) is exact: the writer casts to it (within the
# kind, in range); a kind ("int", "float", "bool", "str") is what a value must be, at the
# width it comes in (float32 losses stay float32). STR cells are variable-length UTF-8.
KINDS = {"int": "iu", "float": "f", "bool": "b", STR: "OSU"}


@dataclass(frozen=True)
class Dataset:
    """An array. ``name`` may hold ``<...>`` segments that stand for any one name
    (``samples/<domain>``); ``shape`` is in the symbols of docs/results.md, alternatives
    joined by " or "; ``unit`` is "" for counts, indices and labels."""

    name: str
    shape: str
    dtype: str
    unit: str
    meaning: str
    strategy: str = ""  # rounds/*: written by this strategy only ("" = the engine, every run)

    @property
    def ranks(self) -> set[int]:
        """Allowed numbers of axes, e.g. {3, 4} for "(E, H, W) or (E, H, W, C)"."""
        return {len(_axes(alt)) for alt in self.shape.split(" or ")}

    def fixed_axes(self) -> dict[int, int]:
        """Axes of a literal length in every alternative, e.g. {1: 4} for "(N, 4)"."""
        alts = [_axes(alt) for alt in self.shape.split(" or ")]
        return {i: int(a) for i, a in enumerate(alts[0]) if a.isdigit() and all(
            len(o) > i and o[i] == a for o in alts)}


@dataclass(frozen=True)
class Column:
    """A column of a table: a 1-D dataset, one cell per row."""

    name: str
    dtype: str
    unit: str
    meaning: str
    required: bool = False  # the writer refuses the table without it (and casts it to dtype)


@dataclass(frozen=True)
class Table:
    """A group of equal-length 1-D columns; attr ``columns`` lists them in written order."""

    name: str
    row: str  # one row per ...
    columns: tuple[Column, ...]
    meaning: str


@dataclass(frozen=True)
class Attrs:
    """A group (or dataset) whose attributes are written with ``set_attrs``; "" = the root.
    Its attributes are listed in docs/results.md."""

    name: str
    meaning: str


def _axes(shape: str) -> list[str]:
    return [a.strip() for a in shape.strip().strip("()").split(",") if a.strip()]


def _c(name, dtype, unit, meaning, required=False):
    return Column(name, dtype, unit, meaning, required)


_PER_RANK = "index 0 = server, i = rank i"
LAYOUT: tuple[Dataset | Table | Attrs, ...] = (
    Attrs("", "lifecycle: schema_version, status, error, created, finished; stop attrs of an unfinished run"),
    Attrs(PROVENANCE, "how the run came about: config, seed, command, code, MPI, hosts, times"),
    Attrs(RUN, "engine facts: iterations per round, evaluators, server threads, start-up time"),
    Attrs("checkpoint", "the last checkpoint (issue 11): every, folder, round, bytes (all ranks), seconds, count "
                        "and total_seconds of this file's checkpoints"),
    Table("resumes", "start of the run and each resume", (
        _c("round", "int64", "", "rounds already done when this part started (0 = the first start)", True),
        _c("started", STR, "", "UTC start time", True),
        _c("slurm_job_id", STR, "", "SLURM job id (empty outside SLURM)", True),
        _c("slurm_restart_count", "int64", "", "SLURM_RESTART_COUNT: times SLURM requeued the job (0 if none)"),
        _c("ranks", "int64", "", "MPI ranks", True),
        _c("hosts", STR, "", "distinct host names, comma-separated"),
    ), "the run's parts: one row per start (`huscf-mpi train --resume` adds one)"),
    Dataset(DOMAINS, "(n_domains,)", STR, "", "ordered domain names; columns of rounds/generation_score"),
    Table(PARTITION, "client", (
        _c("client", "int32", "", "client rank (1..N)", True),
        _c("domain", STR, "", "the client's data domain", True),
        _c("size", "int64", "", "training samples held", True),
        _c("excluded_labels", STR, "", 'labels absent from the client, e.g. "2,5"; "" if none', True),
        _c("split", STR, "", "`official` train/test files, or `pool-80/20` (seeded split of one pool)"),
    ), "each client's share of the data"),
    Attrs(PREFLIGHT, "memory check: mode, memory_fraction, growth_fixed_bytes, growth_per_message_byte"),
    Table(PREFLIGHT, "host", (
        _c("host", STR, "", "host name"),
        _c("ranks", "int", "", "ranks on the host"),
        _c("cores", "int", "", "cores its ranks may use (affinity)"),
        _c("held_bytes", "int", "bytes", "private memory of its ranks at the check"),
        _c("growth_bytes", "float", "bytes", "modelled growth while training"),
        _c("available_bytes", "int", "bytes", "`MemAvailable`; -1 if unknown"),
        _c("fits", "bool", "", "held + growth fit in memory_fraction of available"),
    ), "the memory pre-flight check, per host"),
    Table(PREFLIGHT_RANKS, "rank", (
        _c("rank", "int", "", "MPI rank"),
        _c("host", STR, "", "its host"),
        _c("private_bytes", "int", "bytes", "private memory (`Private_Dirty`) at the check"),
        _c("message_bytes", "int", "bytes", "buffers of its declared messages"),
        _c("growth_bytes", "float", "bytes", "modelled growth while training"),
    ), "the memory pre-flight check, per rank"),
    Attrs(CUTS, "cut selection: mode; with profiles or the GA also devices, emulated, predictions"),
    Dataset(CUT_VECTORS, "(N, 4)", "int32", "", "per client (g_head, g_tail, d_head, d_tail), 1-based block indices"),
    Dataset("cuts/ga_best_fitness", "(G+1,)", "float", "s", "GA: best-so-far predicted time per iteration, per generation"),
    Dataset("cuts/ga_mean_fitness", "(G+1,)", "float", "s", "GA: mean predicted time per iteration, per generation"),
    Dataset("cuts/<net>_forward_flops", "(L,)", "float", "FLOPs", "GA: forward cost of each block of net g or d"),
    Dataset("cuts/<net>_backward_flops", "(L,)", "float", "FLOPs", "GA: backward cost of each block of net g or d"),
    Dataset("cuts/<net>_output_bytes", "(L,)", "float", "bytes", "GA: output size of each block of net g or d"),
    Dataset("cuts/measured_<net>_forward_seconds", "(n_ranks, L)", "float", "s",
            "GA: start-up forward timing of each block, per rank (median)"),
    Dataset("cuts/measured_<net>_backward_seconds", "(n_ranks, L)", "float", "s",
            "GA: start-up backward timing of each block, per rank (median)"),
    Table(CUT_PROFILES, "client (or non-server rank)", (
        _c("client", "int", "", "client (or rank) the profile is for"),
        _c("profile", STR, "", "device profile name; `rank<r>` when measured"),
        _c("flops_per_s", "float", "FLOP/s", "compute speed planned with"),
        _c("link_bytes_per_s", "float", "bytes/s", "link speed planned with"),
        _c("measured_flops_per_s", "float", "FLOP/s", "GA only: measured compute speed"),
        _c("measured_link_bytes_per_s", "float", "bytes/s", "GA only: measured link speed"),
        _c("measured_link_latency_s", "float", "s", "GA only: measured link latency"),
    ), "device profiles the cuts (or a strategy's placement) were planned with"),
    # Per round: the first axis grows by one row per round (maxshape (None, ...)).
    Dataset("rounds/round", "(R,)", "int", "", "round index (1-based)"),
    Dataset("rounds/loss_d", "(R, N)", "float", "", "discriminator loss per client"),
    Dataset("rounds/loss_g", "(R, N)", "float", "", "generator loss per client"),
    Dataset("rounds/generation_score", "(R, n_domains)", "float", "",
            "generation score per domain (columns = /domains); NaN where not evaluated"),
    Dataset("rounds/evaluated", "(R,)", "int8", "", "1 where the round was scored; rows of /samples/<domain> follow these"),
    Dataset("rounds/wall_seconds", "(R,)", "float", "s", "round wall time on rank 0, evaluation excluded"),
    Dataset("rounds/eval_seconds", "(R,)", "float", "s", "the round's evaluation wall time"),
    Dataset("rounds/iteration_seconds", "(R, I)", "float", "s", "wall time of each iteration: the maximum over ranks"),
    Dataset("rounds/train_seconds", "(R, n_ranks)", "float", "s", f"the round's iterations per rank ({_PER_RANK})"),
    Dataset("rounds/compute_seconds", "(R, n_ranks)", "float", "s", f"time computing per rank ({_PER_RANK})"),
    Dataset("rounds/comm_seconds", "(R, n_ranks)", "float", "s", f"time waiting in MPI calls per rank ({_PER_RANK})"),
    Dataset("rounds/bytes_sent", "(R, n_ranks)", "int64", "bytes", "bytes sent in the round per rank"),
    Dataset("rounds/bytes_received", "(R, n_ranks)", "int64", "bytes", "bytes received in the round per rank"),
    Dataset("rounds/max_rss_bytes", "(R, n_ranks)", "int64", "bytes", "peak resident memory per rank so far"),
    Dataset("rounds/private_dirty_bytes", "(R, n_ranks)", "int64", "bytes",
            "memory only this rank wrote (`Private_Dirty`) at round end; -1 if unknown"),
    Dataset("rounds/emulation_overrun_seconds", "(R, n_ranks - 1)", "float", "s",
            "emulated runs: cumulative time real compute was slower than the profile, per non-server rank"),
    Dataset("rounds/emulation_overrun_sections", "(R, n_ranks - 1)", "int64", "",
            "emulated runs: cumulative sections slower than the profile, per non-server rank"),
    Dataset("rounds/cluster_labels", "(R, N)", "int", "", "cluster of each client (SPEC §3)", "huscf"),
    Dataset("rounds/kld", "(R, N)", "float", "nats", "KL divergence of each client within its cluster", "huscf"),
    Dataset("rounds/weights", "(R, N)", "float", "",
            "aggregation weight of each client: within its cluster (huscf), n_i / Σ n_j (fedgan, fslgan)",
            "huscf, fedgan, fslgan"),
    Dataset("rounds/global_kld", "(R, N)", "float", "nats", "KL divergence of each client among all clients", "huscf"),
    Dataset("rounds/global_weights", "(R, N)", "float", "", "weight of each client in the global aggregation", "huscf"),
    Dataset("rounds/adjusted_rand_index", "(R,)", "float", "", "clustering ARI against the true domains", "huscf"),
    Dataset("rounds/swap_to", "(R, N)", "int", "", "the client each client's discriminator moved to", "mdgan"),
    Dataset("rounds/server_loss_d", "(R,)", "float", "", "mean discriminator loss of rank 0's steps", "centralized"),
    Dataset("rounds/server_loss_g", "(R,)", "float", "", "mean generator loss of rank 0's steps", "centralized"),
    # Asynchronous modes of huscf (training.mode buffered | sequential; strategies/asynchronous.py).
    Dataset("rounds/iterations", "(R, N)", "int64", "", "client iterations served per client in the round "
            "(asynchronous modes)", "huscf"),
    Dataset("rounds/staleness", "(R, N)", "int64", "", "buffers served after the client's last iteration of the "
            "round; -1 for a lost client (asynchronous modes)", "huscf"),
    Dataset("rounds/staleness_factor", "(R, N)", "float64", "", "training.staleness of that: the factor on the "
            "client's sample count in its federation weight; NaN for a lost client", "huscf"),
    Dataset("rounds/buffer_sizes", "(R, N)", "int64", "", "column k-1: buffers of k clients served in the round",
            "huscf"),
    Dataset("rounds/served_client", "(R, N·I)", "int32", "", "every client iteration of the round in serving "
            "order: its client (-1 pads a round that lost clients); what train --replay reads", "huscf"),
    Dataset("rounds/served_buffer", "(R, N·I)", "int32", "", "the buffer id (in opening order) of each of those "
            "(-1 pads)", "huscf"),
    Dataset("rounds/served_events", "(R, 6·N·I)", "int32", "", "every server phase run, in order: buffer id x 8 + "
            "phase (0 G forward .. 5 G backward); -1 pads; what train --replay follows", "huscf"),
    Dataset("rounds/live", "(R, N)", "int8", "", "1 if the client was live at the round's end, 0 once lost", "huscf"),
    Dataset("rounds/lost_seconds", "(R, N)", "float64", "s", "seconds into the round when the client was declared "
            "lost; NaN in every other round", "huscf"),
    Table("strategy/placement", "client and part", (
        _c("client", "int", "", "client"),
        _c("part", STR, "", "discriminator part: A, B or C"),
        _c("blocks", STR, "", 'its blocks, e.g. "2,3"'),
        _c("rank", "int", "", "rank hosting it"),
        _c("cost_flops", "float", "FLOPs", "training cost per iteration"),
        _c("over_budget", "int", "", "1 if no device of the walk could take it within fslgan.budget_seconds"),
    ), "fslgan: where each client's discriminator parts live"),
    Table("strategy/devices", "rank of a client", (
        _c("rank", "int", "", "rank"),
        _c("client", "int", "", "client it serves"),
        _c("owner", "int", "", "1 for the client's own, data-holding rank"),
        _c("parts", STR, "", 'parts it hosts, e.g. "B,C"; "" if none'),
        _c("profile", STR, "", "device profile"),
        _c("flops_per_s", "float", "FLOP/s", "its speed"),
        _c("capacity_flops", "float", "FLOPs", "FLOP/s x fslgan.budget_seconds"),
    ), "fslgan: the devices of each client"),
    Dataset("samples/<domain>", "(E, H, W) or (E, H, W, C)", "uint8", "",
            "generated image grid of each evaluated round, one row per class (channels last for RGB)"),
    Dataset("audio/<domain>", "(clips, samples)", "int16", "",
            "audio domains: Griffin-Lim waveforms of generated spectrograms at the final evaluation"),
    Attrs("audio/<domain>", "sample_rate (Hz), labels (class of each row), source"),
    Table(LEDGER, "(receiver, kind, source, shape, dtype)", (
        _c("receiver", "int32", "", "rank that received (0 = the server)", True),
        _c("kind", STR, "", "message kind (`huscf_mpi.comm.kinds`), e.g. `g_smashed`", True),
        _c("plane", STR, "", "`protocol`, `evaluation`, `report` or `setup`", True),
        _c("payload", STR, "", "what the bytes are: one of PAYLOADS, e.g. `raw_images`, `smashed_data`, `parameters`, "
           "`control` (an asynchronous server's iteration grants)", True),
        _c("source", "int32", "", "sending rank", True),
        _c("shape", STR, "", 'payload shape, e.g. "64x128x7x7"', True),
        _c("dtype", STR, "", 'payload dtype, e.g. "float32"', True),
        _c("count", "int64", "", "number of such messages", True),
        _c("bytes", "int64", "bytes", "total payload bytes of those messages", True),
    ), "every message received, aggregated"),
    Table(EXPOSURE, "(payload, plane, sender, receiver)", (
        _c("payload", STR, "", "payload class, as in /ledger", True),
        _c("plane", STR, "", "plane, as in /ledger", True),
        _c("sender", STR, "", "`client` or `server`", True),
        _c("receiver", STR, "", "`client` or `server`", True),
        _c("messages", "int64", "", "number of messages", True),
        _c("bytes", "int64", "bytes", "total payload bytes", True),
    ), "who saw what: whether each payload class left its owner, and to whom"),
    Attrs("final/<domain>", "final metrics of the domain (accuracy, f1, fid, ... in the units of docs/results.md)"),
)

# Known tables: required columns and the dtypes they are cast to (STR = variable-length UTF-8).
TABLES: dict[str, dict[str, object]] = {
    t.name: {c.name: (STR if c.dtype == STR else np.dtype(c.dtype)) for c in t.columns if c.required}
    for t in LAYOUT if isinstance(t, Table) and any(c.required for c in t.columns)}
# String columns whose cells may be given as sequences; they are joined with this separator.
JOINERS = {"excluded_labels": ",", "shape": "x"}


@lru_cache(maxsize=None)
def _pattern(name: str) -> re.Pattern:
    return re.compile("".join("[^/]+" if part.startswith("<") else re.escape(part)
                              for part in re.split(r"(<[^>]*>)", name)) + r"\Z")


def find(name: str, kind: type, extra=()) -> Dataset | Table | Attrs | None:
    """The entry of ``kind`` (:class:`Dataset`, :class:`Table` or :class:`Attrs`) that declares
    ``name`` (no leading "/"), among :data:`LAYOUT` and ``extra``; None if none does."""
    for entry in (*extra, *LAYOUT):
        if isinstance(entry, kind) and _pattern(entry.name).match(name):
            return entry
    return None


def exact_dtype(dtype: str) -> np.dtype | None:
    """The numpy dtype a declared ``dtype`` names exactly; None for a kind ("int", "float", ...)."""
    return None if dtype in KINDS else np.dtype(dtype)


def kind_matches(dtype: str, actual: np.dtype) -> bool:
    """Whether values of numpy dtype ``actual`` are of the declared ``dtype``'s kind."""
    exact = exact_dtype(dtype)
    return actual.kind in (KINDS[dtype] if exact is None else ("iu" if exact.kind in "iu" else exact.kind))


def partial_path(path: str | Path) -> Path:
    """``<path>.partial``: where a run's file lives until it completes."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)
