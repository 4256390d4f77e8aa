"""Run configuration: typed models, YAML loading, CLI overrides and one-line validation errors.

A config is a YAML mapping with the sections below; every field has a default, so an empty
file is the quickstart. Unknown keys are errors (a typo must never be silently ignored).
The packaged quickstart is ``huscf_mpi/configs/quickstart.yaml``; paper-scale configs for the
SPEC §4 scenarios live in ``jobs/configs/``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError, field_validator,
                      model_validator)

from .config_view import ConfigView
from .errors import UsageError
from .federation.staleness import StalenessFunction, parse_staleness

QUICKSTART = Path(__file__).with_name("configs") / "quickstart.yaml"


class ConfigError(UsageError, ValueError):
    """A config problem, as one line naming the field and the fix."""


def _no_bool(v: Any) -> Any:
    # YAML reads yes/no/true/false as booleans, which pydantic would take as 1 and 0.
    if isinstance(v, bool):
        raise ValueError(f"must be a number, got {str(v).lower()}")
    return v


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]
#: A staleness function field: validates text with ``parse_staleness``, serialises back to text.
StalenessSpec = Annotated[StalenessFunction, BeforeValidator(parse_staleness), PlainSerializer(str, return_type=str)]

CUT_MODES = ("ga", "uniform-min", "uniform-max", "random")
SEED_MAX = 2**63 - 1  # stored as int64 in the result file


class _Section(BaseModel):
    # allow_inf_nan=False: YAML's .inf and .nan are refused by every float field.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataConfig(_Section):
    """Which domains, how many clients each, and how they are partitioned (SPEC §4)."""

    root: str | None = Field(None, description="data root; else $HUSCF_DATA_ROOT, else ./data")
    domains: dict[str, Int] = Field(default_factory=lambda: {"mnist": 4},
                                    description="domain -> number of clients, in client-id order")
    scenario: Int = Field(1, ge=1, le=7, description="SPEC §4 scenario 1..7 (7 = multi-domain non-IID)")
    max_samples_per_client: Int | None = Field(None, ge=1, description="extra cap per client (quickstarts)")
    cache: str = Field("~/.cache/huscf-mpi/data", description="decoded-dataset cache, built once per node and "
                                                              "memory-mapped by every rank (see data/cache.py)")

    @field_validator("domains")
    @classmethod
    def _clients(cls, v: dict[str, int]) -> dict[str, int]:
        if not v:
            raise ValueError("needs at least one domain, e.g. {mnist: 4}")
        for name, n in v.items():
            if n < 1:
                raise ValueError(f"domain {name!r} has {n} clients; give it at least 1 or remove it")
        return v

    @model_validator(mode="after")
    def _scenario_domains(self) -> "DataConfig":
        from .data.errors import DataError
        from .data.partition import SCENARIOS
        from .data.registry import get_domain

        try:
            shapes = {d: get_domain(d).image_shape for d in self.domains}
        except DataError as e:
            raise ValueError(str(e)) from None
        if len(set(shapes.values())) > 1:
            listed = ", ".join(f"{d} {'x'.join(map(str, s))}" for d, s in shapes.items())
            raise ValueError(f"domains mix image shapes ({listed}): clients of one run share a server body, "
                             "so all their images must have one shape; run these domains separately")
        # SPEC §4's table names MNIST-family domains; a config with any other domain (CIFAR-10,
        # PneumoniaMNIST, FSDD, ...) takes only the scenario's rules (exclusion, caps).
        paper = {d for sc in SCENARIOS.values() for d in sc.domains}
        if not set(self.domains) <= paper:
            return self
        spec = SCENARIOS[self.scenario]
        missing = [d for d in spec.domains if d not in self.domains]
        extra = [d for d in self.domains if d not in spec.domains]
        if missing or extra:
            fix = ", ".join(f"{d}: <clients>" for d in spec.domains)
            what = (f"no clients for {', '.join(missing)}" if missing
                    else f"{', '.join(extra)} is not one of its domains")
            raise ValueError(f"domains: scenario {self.scenario} ({spec.name}) uses {', '.join(spec.domains)}; {what}: "
                             f"set domains to {{{fix}}} or pick another scenario")
        return self

    @property
    def n_clients(self) -> int:
        return sum(self.domains.values())


class ModelConfig(_Section):
    architecture: str = "cgan28"
    width: Float = Field(1.0, gt=0, le=4, description="hidden-channel multiplier; 1.0 = paper model")
    body_norm: Literal["batch", "group", "layer", "none"] = Field(
        "batch", description="norm of blocks 2-4, those a cut can leave on the server: batch = BatchNorm (SPEC §2; "
        "its statistics are those of the samples in one body pass, one client's in sequential mode), group = "
        "GroupNorm (<= 8 groups), layer = GroupNorm with one group, none; block 1 keeps BatchNorm")


class TrainingConfig(_Section):
    batch_size: Int = Field(64, ge=2, description="per-client batch (BatchNorm needs >= 2)")
    lr: Float = Field(2e-4, gt=0)
    betas: tuple[Float, Float] = (0.5, 0.999)
    local_epochs: Int = Field(5, ge=1, description="local epochs per federation round (E)")
    rounds: Int = Field(50, ge=1, description="federation rounds (R)")
    iterations_per_epoch: Int | None = Field(
        None, ge=1, description="override; default max over clients of ceil(shard / batch)")
    fake_labels: Literal["real", "uniform"] = Field(
        "real", description="labels that condition the fakes: 'real' = the real batch's labels (the authors' code, "
                            "SPEC §1), 'uniform' = sampled uniformly over the classes")
    client_timeout_s: Float | None = Field(
        3600.0, gt=0, description="rank 0 ends the run as failed when an expected training or report message "
        "(not an evaluation's) is this many seconds late: a frozen or dead client. An hour is longer than any "
        "such wait at paper scale (FedGAN's server waits a whole round; ~30 min emulated on the paper's devices); "
        "null = wait for ever")
    mode: Literal["sync", "buffered", "sequential"] = Field(
        "sync", description="sync = lock-step (SPEC §1, every client every iteration); buffered = the server serves "
        "buffers of the first training.buffer clients ready (FedBuff/GAS-style); sequential = one client at a time "
        "(SplitFed v2-style, buffer 1). A round is N x iterations_per_round client iterations either way "
        "(huscf_mpi/strategies/asynchronous.py)")
    buffer: Int | None = Field(
        None, ge=1, description="buffered mode: clients per buffer K (1..N; K = N serves like sync); "
        "null = half the clients, rounded up")
    deadline_ms: Float | None = Field(
        None, gt=0, description="buffered mode: close a buffer this many milliseconds after its first arrival "
        "with whoever has arrived (a straggler joins a later buffer); null = wait for K")
    min_clients: Int = Field(
        1, ge=1, description="asynchronous modes: a client silent for client_timeout_s is declared lost and the run "
        "goes on without it while at least this many clients are live; below, it ends as failed (sync: any loss)")
    replay: str | None = Field(
        None, description="a buffered or sequential run's result file: serve the buffers it recorded, in its order, "
        "to repeat it bit for bit (the config must be the recorded one but for name, output and this)")
    checkpoint_every: Int = Field(
        1, ge=0, description="write a checkpoint to <output>.ckpt/ after every this many rounds and the last, so a "
        "stopped run continues with `huscf-mpi train --resume <output>.partial`; 0 = none. Removed once the run is "
        "complete")
    staleness: StalenessSpec = Field(
        "constant", description="asynchronous modes: federation weight factor of a client by its staleness (server "
        "steps since its last iteration of the round): constant, polynomial(a) or hinge(a, b) (FedAsync)")

    @field_validator("replay")
    @classmethod
    def _replay(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).expanduser().is_file():
            raise ValueError(f"{v!r} is not a file; give the result file (.h5) of the run to replay")
        return v

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError(f"got {list(v)}; Adam needs both in [0, 1), e.g. [0.5, 0.999]")
        return v


class FederationConfig(_Section):
    warmup_rounds: Int = Field(2, ge=0, description="rounds of plain FedAvg before clustering")
    alpha: Float = Field(1.0, ge=0, description="KLD temperature in w = n·exp(-alpha·KLD)")
    clusters: Union[Int, Literal["domains", "auto"]] = Field(
        "domains", description="KMeans k: 'domains' = number of domains, 'auto' = best silhouette")

    @field_validator("clusters", mode="before")
    @classmethod
    def _clusters(cls, v):
        if v in ("domains", "auto") or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError(f"got {v!r}; give domains, auto or a number of clusters from 1 to the number of clients")


class CutSelectionConfig(_Section):
    """How ``cuts: ga`` picks each client's cut vector (SPEC §5)."""

    devices: str | None = Field(None, description="device profiles YAML to emulate (e.g. jobs/devices/paper.yaml); "
                                                  "none = measure the real ranks")
    emulate: bool = Field(True, description="with devices: pace each client to its profile's FLOP/s and link")
    cost_mode: Literal["true", "reference"] = Field("true", description="FLOPs from torch's counter, or the "
                                                                        "original code's hand table")
    population: Int = Field(1000, ge=2)
    generations: Int = Field(1000, ge=0)
    stall_generations: Int | None = Field(100, ge=1, description="stop after this many generations without gain")
    profile_repeats: Int = Field(5, ge=1, description="timed repetitions per block (median)")
    profile_warmup: Int = Field(2, ge=0)

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from .cuts.devices import load_devices

        if not Path(v).expanduser().is_file():
            raise ValueError(f"file {v} not found (relative paths are from the current directory); give a YAML "
                             "like jobs/devices/paper.yaml, or remove the field to measure the real ranks")
        try:
            load_devices(Path(v).expanduser())
        except yaml.YAMLError as e:
            raise ValueError(f"{v}: {_yaml_problem(e)}; give a YAML like jobs/devices/paper.yaml") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            what = str(e).splitlines()[0] if str(e) else type(e).__name__
            what = what if what.startswith(str(v)) else f"{v}: {what}"
            raise ValueError(f"{what}; give a YAML like jobs/devices/paper.yaml") from None
        return v


class FSLGANConfig(_Section):
    """FSL-GAN (``strategy: fslgan``, issue 9): each client's discriminator split across its devices.

    A run needs ``1 + N * devices_per_client`` MPI ranks (see ``huscf_mpi/strategies/fslgan.py``).
    """

    devices_per_client: Int = Field(3, ge=1, le=64, description="MPI ranks per client: the data owner (the "
                                    "client's own rank) and devices_per_client - 1 devices without data")
    budget_seconds: Float = Field(0.5, gt=0, description="placement: a device may host discriminator parts whose "
                                  "training FLOPs per iteration take at most this long at its FLOP/s (emulated or "
                                  "measured profile); a part no device can take goes where most capacity is left")


class CentralizedConfig(_Section):
    """The centralized bound (``strategy: centralized``, ``huscf_mpi/strategies/centralized.py``)."""

    pool: Literal["all", "domain"] = Field("all", description="all: one cGAN on the union of every client's "
                                           "shard; domain: one cGAN per domain on the union of its shards (the "
                                           "bound for per-domain generators, e.g. HuSCF-GAN's clusters)")


class EvaluationConfig(_Section):
    every: Int = Field(1, ge=1, description="generation score every this many rounds (and the last)")
    generation_samples: Int = Field(5000, ge=10)
    synthetic_samples: Int = Field(30000, ge=10)
    synthetic_epochs: Int = Field(15, ge=1)
    classifier_epochs: Int = Field(3, ge=1, description="epochs of the domain classifier (cached)")
    classifier_train_samples: Int | None = Field(
        None, ge=10, description="train the domain classifier on this many images of the training split (a fixed "
        "random subset) instead of all of them: for quick tests; its real test accuracy is recorded either way")
    batch_size: Int = Field(500, ge=1, description="samples per U-path generation message")
    cache_dir: str = Field("~/.cache/huscf-mpi", description="domain-classifier cache (not the data root)")
    sample_grid: bool = Field(True, description="send a uint8 sample grid per evaluated domain to rank 0 for the result file")
    grid_per_class: Int = Field(8, ge=1, description="sample-grid columns per class")
    audio_per_class: Int = Field(2, ge=0, description="audio domains (fsdd): generated clips per class turned "
                                 "into sound (Griffin-Lim) at the final evaluation, stored in /audio/<domain>; "
                                 "`huscf-mpi plot` writes them as WAV files; 0 = none")
    inception_weights: str | None = Field(
        None, description="local copy of pytorch-fid's pt_inception-2015-12-05-6726825d.pth: adds the final "
                          "Inception FID ('FID (Inception)', fid_inception) on the same images as fid; never "
                          "downloaded; slow on CPUs (~6 GFLOP per image, 2 x min(synthetic_samples, test set) images)")

    @field_validator("inception_weights")
    @classmethod
    def _weights_exist(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).expanduser().is_file():
            raise ValueError(f"file {v} not found; give the path of a local copy of pytorch-fid's "
                             "pt_inception-2015-12-05-6726825d.pth (it is never downloaded), or remove the field")
        return v


class ServerConfig(_Section):
    """How rank 0 computes (issue 7)."""

    threads: Union[Literal["auto"], Int] = Field(
        "auto", description="torch threads of rank 0's body computations: 'auto' = the cores of its node that the "
                            "clients on that node leave idle while it computes (see roles/threads.py), or a number >= 1")

    @field_validator("threads", mode="before")
    @classmethod
    def _threads(cls, v):
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError(f"got {v!r}; give 'auto' or a number of threads >= 1")


class PreflightConfig(_Section):
    """The memory check before training (issue 7)."""

    memory: Literal["check", "warn", "off"] = Field(
        "check", description="estimate memory per node before training: 'check' stops a run that cannot fit, "
                             "'warn' only logs, 'off' skips the estimate")
    memory_fraction: Float = Field(0.9, gt=0, le=1, description="share of a node's available memory a run may plan to use")


class Config(_Section):
    """The whole run. ``seed`` is the root of every random stream (see ``huscf_mpi.seeding``)."""

    name: str = "run"
    seed: Int = Field(0, ge=0, le=SEED_MAX, description="root seed, 0 .. 2**63-1")
    strategy: str = Field("huscf", description="the method: huscf, fedgan, mdgan, fslgan or centralized "
                                               "(huscf_mpi/strategies)")
    output: str = Field("results/{name}-s{seed}.h5", description="HDF5 path; {name} and {seed} expand")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    federation: FederationConfig = FederationConfig()
    cuts: Union[Literal["ga", "uniform-min", "uniform-max", "random"], list[int], dict[int, list[int]]] = Field(
        "ga", description="'ga' (SPEC §5), one [g_head, g_tail, d_head, d_tail] for all, per client {id: [...]}, "
                          "or uniform-min / uniform-max / random")
    cut_selection: CutSelectionConfig = CutSelectionConfig()
    fslgan: FSLGANConfig = FSLGANConfig()
    centralized: CentralizedConfig = CentralizedConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    server: ServerConfig = ServerConfig()
    preflight: PreflightConfig = PreflightConfig()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip() or "/" in v or "\\" in v or v in (".", ".."):
            raise ValueError(f"got {v!r}; give a non-empty name without path separators, e.g. scenario1 "
                             "(it names the result file; put folders in output)")
        return v

    @field_validator("output")
    @classmethod
    def _output(cls, v: str) -> str:
        try:
            path = v.format(name="run", seed=0)
        except (KeyError, IndexError, ValueError, AttributeError) as e:
            what = f"{{{e.args[0]}}} is not a placeholder" if isinstance(e, KeyError) else f"bad braces ({e})"
            raise ValueError(f"{v!r}: {what}; only {{name}} and {{seed}} expand (write {{{{ and }}}} for "
                             "literal braces), e.g. results/{name}-s{seed}.h5") from None
        if not path.strip() or path.endswith(("/", "\\")) or Path(path).name in (".", ".."):
            raise ValueError(f"{v!r} is not a file path; give one such as results/{{name}}-s{{seed}}.h5")
        return v

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: str) -> str:
        from .registry import STRATEGY_MODULES

        if v not in STRATEGY_MODULES:
            raise ValueError(f"unknown strategy {v!r}; choose one of {', '.join(STRATEGY_MODULES)}")
        return v

    @field_validator("cuts", mode="before")
    @classmethod
    def _cuts_shape(cls, v):
        # One message per mistake, instead of one per member of the Union.
        modes = ", ".join(CUT_MODES)
        fix = f"give {modes}, one [g_head, g_tail, d_head, d_tail] for all clients or {{client: [...]}}"

        def vector(values, where: str) -> list[int]:
            if not isinstance(values, (list, tuple)) or len(values) != 4:
                raise ValueError(f"{where}needs 4 values [g_head, g_tail, d_head, d_tail], got {values!r}")
            if not all(isinstance(x, int) and not isinstance(x, bool) for x in values):
                raise ValueError(f"{where}values must be block numbers (integers), got {values!r}")
            return list(values)

        if isinstance(v, str):
            if v not in CUT_MODES:
                raise ValueError(f"unknown mode {v!r}; {fix}")
            return v
        if isinstance(v, (list, tuple)):
            return vector(v, "")
        if isinstance(v, dict):
            out = {}
            for key, values in v.items():
                try:
                    client = int(key)
                except (TypeError, ValueError):
                    raise ValueError(f"client {key!r} is not a client number; {fix}") from None
                out[client] = vector(values, f"client {client} ")
            return out
        raise ValueError(f"got {v!r}; {fix}")

    @model_validator(mode="after")
    def _cross_fields(self) -> "Config":
        # Messages start with the field to blame: _one_line reads it as the error's location.
        n = self.data.n_clients
        if isinstance(self.cuts, dict):
            extra = sorted(set(self.cuts) - set(range(1, n + 1)))
            if extra:
                raise ValueError(f"cuts: names clients {extra} but clients are 1..{n} (data.domains); "
                                 "give exactly one vector per client")
            missing = sorted(set(range(1, n + 1)) - set(self.cuts))
            if missing:
                raise ValueError(f"cuts: no vector for clients {missing}; give one for each of 1..{n}")
        t = self.training
        if t.mode != "buffered":
            for field in ("buffer", "deadline_ms"):
                if getattr(t, field) is not None:
                    raise ValueError(f"training.{field}: applies to mode buffered only (mode is {t.mode}); "
                                     f"remove it or set training.mode: buffered")
        if t.replay is not None and t.mode == "sync":
            raise ValueError("training.replay: a synchronous run needs no replay (same seed, same numbers); "
                             "set training.mode to the recorded run's buffered or sequential")
        if t.min_clients > n:
            raise ValueError(f"training.min_clients: {t.min_clients} but the run has {n} clients (data.domains); "
                             f"give 1..{n}")
        if t.buffer is not None and t.buffer > n:
            raise ValueError(f"training.buffer: {t.buffer} clients per buffer but the run has {n} (data.domains); "
                             f"give 1..{n}")
        k = self.federation.clusters
        if isinstance(k, int) and k > n:
            raise ValueError(f"federation.clusters: {k} clusters for {n} clients (data.domains); give at most {n}, "
                             "or domains / auto")
        from .data.registry import get_domain

        classes = max(get_domain(d).n_classes for d in self.data.domains)
        ev = self.evaluation
        for field in ("generation_samples", "synthetic_samples"):
            if getattr(ev, field) < classes:
                raise ValueError(f"evaluation.{field}: {getattr(ev, field)} samples cannot cover the {classes} "
                                 f"classes of data.domains; give at least {classes}")
        if ev.sample_grid and ev.grid_per_class * classes > ev.generation_samples:
            raise ValueError(f"evaluation.grid_per_class: {ev.grid_per_class} per class x {classes} classes is more "
                             f"than the {ev.generation_samples} generation_samples drawn per evaluation, so the grid "
                             f"would have empty cells; give at most {ev.generation_samples // classes}, or raise "
                             "evaluation.generation_samples")
        return self._check_architecture()

    def _check_architecture(self) -> "Config":
        # Last, as it imports torch: the architecture must take the domains' images, and fixed
        # cut vectors must fit it (set-up checks them again; here they fail before any MPI work).
        from .models import CutVector, domain_architecture

        try:
            arch = domain_architecture(self.model.architecture, self.data.domains, self.model.body_norm)
        except KeyError as e:
            raise ValueError(f"model.architecture: {e.args[0]}") from None
        except ValueError as e:
            raise ValueError(f"model.architecture: {e}") from None
        if isinstance(self.cuts, str):
            return self
        vectors = self.cuts if isinstance(self.cuts, dict) else {None: self.cuts}
        for client, values in sorted(vectors.items(), key=lambda kv: kv[0] or 0):
            try:
                CutVector.from_tuple(values).validate(arch)
            except ValueError as e:
                who = f"client {client}'s vector {values}" if client is not None else f"{values}"
                raise ValueError(f"cuts: {who}: {e}; e.g. [2, 4, 1, 5]") from None
        return self

    @model_validator(mode="after")
    def _mode_supported(self) -> "Config":
        from .registry import load_strategy

        modes = load_strategy(self.strategy).modes
        if self.training.mode not in modes:
            raise ValueError(f"training.mode: strategy {self.strategy} runs in {' or '.join(modes)} mode only; "
                             f"set training.mode: sync or strategy: huscf")
        return self

    @model_validator(mode="after")
    def _fslgan_labels(self) -> "Config":
        if self.strategy == "fslgan" and self.training.fake_labels == "real":
            raise ValueError("training.fake_labels: real needs real labels on the server, but fslgan's server samples "
                             "the fakes' labels (real labels never leave their owner); set training.fake_labels: uniform")
        return self

    @property
    def output_path(self) -> Path:
        return Path(self.output.format(name=self.name, seed=self.seed))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def view(cfg: Config) -> ConfigView:
    """``cfg`` as a :class:`~huscf_mpi.config_view.ConfigView`: its fields and derived properties
    (``data.n_clients``, ``output_path``) as plain values, sections as nested views, and its
    ``to_yaml()`` text; what client ranks receive instead of a pydantic model (issue 7)."""
    def values(model: BaseModel) -> dict[str, Any]:
        out = {name: getattr(model, name) for name in type(model).model_fields}
        out.update({name: getattr(model, name) for name, attr in vars(type(model)).items()
                    if isinstance(attr, property)})
        return {k: ConfigView(values(v)) if isinstance(v, BaseModel) else v for k, v in out.items()}
    return ConfigView(values(cfg), cfg.to_yaml())


def _show(v: Any) -> str:
    """A value as the user wrote it in YAML (null, true, 'text', [1, 2])."""
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    return repr(v)


_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"),
           "less_than_equal": ("<=", "le"), "less_than": ("<", "lt")}
_KINDS = {"int_parsing": "an integer", "int_type": "an integer", "int_from_float": "an integer",
          "float_parsing": "a number", "float_type": "a number", "finite_number": "a finite number",
          "string_type": "text (quote it)", "bool_parsing": "true or false", "bool_type": "true or false",
          "list_type": "a list", "tuple_type": "a list", "dict_type": "a mapping {key: value}"}


def _section_keys(loc: tuple) -> str:
    section: Any = Config
    for part in loc:
        section = section.model_fields[part].annotation if isinstance(part, str) and part in getattr(
            section, "model_fields", {}) else None
    return ", ".join(getattr(section, "model_fields", {})) or "see README, Config reference"


def _error(e: dict) -> tuple[str, str]:
    """(dotted field, message) of one pydantic error, in the project's words."""
    loc, kind, value, ctx = tuple(e["loc"]), e["type"], e.get("input"), e.get("ctx") or {}
    msg = e["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        msg = f"unknown key; known keys here: {_section_keys(loc[:-1])}"
    elif kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        msg = f"must be {op} {ctx[key]}, got {_show(value)}"
    elif kind in _KINDS:
        msg = f"must be {_KINDS[kind]}, got {_show(value)}"
    elif kind == "literal_error":
        msg = f"must be {ctx['expected']}, got {_show(value)}"
    elif kind in ("model_type", "model_attributes_type"):
        msg = f"must be a mapping of its keys ({_section_keys(loc)}), got {_show(value)}"
    elif kind == "missing" and loc and isinstance(loc[-1], int):
        loc, msg = loc[:-1], f"has too few values, got {_show(value)}"
    elif kind == "too_long":
        msg = f"has too many values ({ctx.get('max_length')} at most), got {_show(value)}"
    where = ".".join(str(p) for p in loc)
    if not where:  # a cross-field rule: its message starts with the field to blame
        head, sep, rest = msg.partition(": ")
        if sep and head.replace(".", "").replace("_", "").isalnum():
            where, msg = head, rest
    return where or "config", msg


def _one_line(err: ValidationError, src: Path, options: dict[str, str]) -> str:
    """One line: the option or the file and field to blame, the problem, and how many more there are."""
    where, msg = _error(err.errors()[0])
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    for field, option in options.items():
        if where == field or where.startswith(field + "."):
            return f"{option}: {msg}{more}"
    return f"{src}: {where}: {msg}{more}"


def _set(d: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        if d.get(p) is None:
            d[p] = {}
        d = d[p]
        if not isinstance(d, dict):
            return  # the file's section is not a mapping: validation says so
    d[leaf] = value


def _yaml_problem(e: yaml.YAMLError) -> str:
    """``not valid YAML at line L, column C: <problem>`` (one line)."""
    mark = getattr(e, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
    return f"not valid YAML{at}: {what}"


class _Duplicate(Exception):
    pass


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:
            continue  # an unhashable key: construct_mapping reports it
        if first != key_node.start_mark.line + 1:
            raise _Duplicate(f"line {key_node.start_mark.line + 1}: key {_show(key)} is given twice (first on "
                             f"line {first}); the second would silently replace the first: merge them into one")
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_yaml(src: Path) -> Any:
    """The YAML document in ``src``; ``ConfigError`` (one line, with the line number) if it is
    missing, unreadable, not UTF-8 text, not valid YAML or gives a key twice."""
    try:
        data = src.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {src} not found; pass an existing --config or omit it for the quickstart") from None
    except OSError as e:
        raise ConfigError(f"config file {src}: {e.strerror or e}; pass a readable YAML file as --config") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        raise ConfigError(f"{src}: not a UTF-8 text file (it holds NUL bytes: binary, or UTF-16/32); save it as "
                          "UTF-8 YAML")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ConfigError(f"{src}: not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); save it as UTF-8 "
                          "YAML") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except _Duplicate as e:
        raise ConfigError(f"{src}: {e}") from None
    except yaml.YAMLError as e:
        tabs = "; indent with spaces, not tabs" if "\t" in text else ""
        raise ConfigError(f"{src}: {_yaml_problem(e)}{tabs}") from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                options: dict[str, str] | None = None) -> Config:
    """Read ``path`` (the quickstart if None), apply dotted ``overrides`` and validate.

    ``options`` maps dotted fields to the command-line options that set them (``{"training.rounds":
    "--rounds"}``): a bad value there is blamed on the option, not on the file.

    Raises
    ------
    ConfigError : one line naming the file and field (or the option) and the problem.
    """
    src = Path(path) if path is not None else QUICKSTART
    return _validate(read_yaml(src), src, overrides, options)


def differences(a: Config | dict, b: Config | dict, ignore=()) -> list[tuple[str, Any, Any]]:
    """``(dotted field, value in a, value in b)`` for every field where two configs (or their
    dumps) differ, sorted; ``ignore`` lists dotted fields that may differ (e.g. ``"output"``)."""
    fa = flat_fields(a if isinstance(a, dict) else a.model_dump(mode="json"))
    fb = flat_fields(b if isinstance(b, dict) else b.model_dump(mode="json"))
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb))
            if k not in ignore and fa.get(k) != fb.get(k)]


def flat_fields(tree: dict, prefix: str = "") -> dict:
    """A config dump (``model_dump(mode="json")`` or its YAML) as ``{dotted field: value}``."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key not in ("domains", "cuts"):
            out.update(flat_fields(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_from_text(text: str, source: str, overrides: dict[str, Any] | None = None,
                     options: dict[str, str] | None = None) -> Config:
    """A config from YAML ``text`` (e.g. a result file's or checkpoint's ``config_yaml``), blamed on
    ``source`` in errors; otherwise as :func:`load_config`."""
    try:
        raw = yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, _Duplicate) as e:
        raise ConfigError(f"{source}: its config is not valid YAML ({e})") from None
    return _validate(raw, Path(source), overrides, options)


# Fields a resumed run may change: how often it checkpoints, not what it computes.
RESUMABLE_CHANGES = ("training.checkpoint_every",)


def resumed_config(saved_yaml: str, source: str, path: str | Path | None = None,
                   overrides: dict[str, Any] | None = None, options: dict[str, str] | None = None) -> Config:
    """The config of a resumed run: the checkpoint's (``saved_yaml``), or the one ``path`` and
    ``overrides`` give when it equals the checkpoint's but for :data:`RESUMABLE_CHANGES`.

    Raises ``ConfigError`` naming ``source`` and the first field that differs."""
    saved = config_from_text(saved_yaml, source)
    if path is None and not any(v is not None for v in (overrides or {}).values()):
        return saved
    given = (load_config(path, overrides, options) if path is not None
             else config_from_text(saved_yaml, source, overrides, options))
    for key, have, had in differences(given, saved, RESUMABLE_CHANGES)[:1]:
        raise ConfigError(f"{source}: the stopped run has {key} = {_show(had)}, this one {_show(have)}; a resumed run "
                          "keeps its config (omit --config and the options that change it)")
    return given


def _validate(raw, src: Path, overrides, options) -> Config:
    if raw is None:
        raw = {}  # an empty file: every default
    if not isinstance(raw, dict):
        raise ConfigError(f"{src}: the top level must be a mapping of sections (data:, model:, training: ...), "
                          f"got {type(raw).__name__}")
    for key, field in Config.model_fields.items():
        if raw.get(key, 0) is None and isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            del raw[key]  # a section with every line commented out: its defaults
    for key, value in (overrides or {}).items():
        if value is not None:
            _set(raw, key, value)
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_one_line(e, src, {k: v for k, v in (options or {}).items()
                                             if (overrides or {}).get(k) is not None})) from None
