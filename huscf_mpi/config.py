"""Run configuration: typed models, YAML loading, CLI overrides and one-line validation errors.

A config is a YAML mapping with the sections below; every field has a default, so an empty
file is the quickstart. Unknown keys are errors (a typo must never be silently ignored).
The packaged quickstart is ``huscf_mpi/configs/quickstart.yaml``; paper-scale configs for the
SPEC §4 scenarios live in ``jobs/configs/``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import UsageError

QUICKSTART = Path(__file__).with_name("configs") / "quickstart.yaml"


class ConfigError(UsageError, ValueError):
    """A config problem, as one line naming the field and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    """Which domains, how many clients each, and how they are partitioned (SPEC §4)."""

    root: str | None = Field(None, description="data root; else $HUSCF_DATA_ROOT, else ./data")
    domains: dict[str, int] = Field(default_factory=lambda: {"mnist": 4},
                                    description="domain -> number of clients, in client-id order")
    scenario: int = Field(1, ge=1, le=7, description="SPEC §4 scenario 1..7 (7 = multi-domain non-IID)")
    max_samples_per_client: int | None = Field(None, ge=1, description="extra cap per client (quickstarts)")
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
    width: float = Field(1.0, gt=0, le=4, description="hidden-channel multiplier; 1.0 = paper model")


class TrainingConfig(_Section):
    batch_size: int = Field(64, ge=2, description="per-client batch (BatchNorm needs >= 2)")
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    local_epochs: int = Field(5, ge=1, description="local epochs per federation round (E)")
    rounds: int = Field(50, ge=1, description="federation rounds (R)")
    iterations_per_epoch: int | None = Field(
        None, ge=1, description="override; default max over clients of ceil(shard / batch)")
    fake_labels: Literal["real", "uniform"] = Field(
        "real", description="labels that condition the fakes: 'real' = the real batch's labels (the authors' code, "
                            "SPEC §1), 'uniform' = sampled uniformly over the classes")


class FederationConfig(_Section):
    warmup_rounds: int = Field(2, ge=0, description="rounds of plain FedAvg before clustering")
    alpha: float = Field(1.0, ge=0, description="KLD temperature in w = n·exp(-alpha·KLD)")
    clusters: Union[int, Literal["domains", "auto"]] = Field(
        "domains", description="KMeans k: 'domains' = number of domains, 'auto' = best silhouette")


class CutSelectionConfig(_Section):
    """How ``cuts: ga`` picks each client's cut vector (SPEC §5)."""

    devices: str | None = Field(None, description="device profiles YAML to emulate (e.g. jobs/devices/paper.yaml); "
                                                  "none = measure the real ranks")
    emulate: bool = Field(True, description="with devices: pace each client to its profile's FLOP/s and link")
    cost_mode: Literal["true", "reference"] = Field("true", description="FLOPs from torch's counter, or the "
                                                                        "original code's hand table")
    population: int = Field(1000, ge=2)
    generations: int = Field(1000, ge=0)
    stall_generations: int | None = Field(100, ge=1, description="stop after this many generations without gain")
    profile_repeats: int = Field(5, ge=1, description="timed repetitions per block (median)")
    profile_warmup: int = Field(2, ge=0)


class FSLGANConfig(_Section):
    """FSL-GAN (``strategy: fslgan``, issue 9): each client's discriminator split across its devices.

    A run needs ``1 + N * devices_per_client`` MPI ranks (see ``huscf_mpi/strategies/fslgan.py``).
    """

    devices_per_client: int = Field(3, ge=1, le=64, description="MPI ranks per client: the data owner (the "
                                    "client's own rank) and devices_per_client - 1 devices without data")
    budget_seconds: float = Field(0.5, gt=0, description="placement: a device may host discriminator parts whose "
                                  "training FLOPs per iteration take at most this long at its FLOP/s (emulated or "
                                  "measured profile); a part no device can take goes where most capacity is left")


class EvaluationConfig(_Section):
    every: int = Field(1, ge=1, description="generation score every this many rounds (and the last)")
    generation_samples: int = Field(5000, ge=10)
    synthetic_samples: int = Field(30000, ge=10)
    synthetic_epochs: int = Field(15, ge=1)
    classifier_epochs: int = Field(3, ge=1, description="epochs of the domain classifier (cached)")
    classifier_train_samples: int | None = Field(
        None, ge=10, description="train the domain classifier on this many images of the training split (a fixed "
        "random subset) instead of all of them: for quick tests; its real test accuracy is recorded either way")
    batch_size: int = Field(500, ge=1, description="samples per U-path generation message")
    cache_dir: str = Field("~/.cache/huscf-mpi", description="domain-classifier cache (not the data root)")
    sample_grid: bool = Field(True, description="send a uint8 sample grid per evaluated domain to rank 0 for the result file")
    grid_per_class: int = Field(8, ge=1, description="sample-grid columns per class")
    audio_per_class: int = Field(2, ge=0, description="audio domains (fsdd): generated clips per class turned "
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

    threads: Union[Literal["auto"], int] = Field(
        "auto", description="torch threads of rank 0's body computations: 'auto' = the cores of its node that the "
                            "clients on that node leave idle while it computes (see roles/threads.py), or a number >= 1")

    @field_validator("threads")
    @classmethod
    def _threads(cls, v):
        if isinstance(v, int) and v < 1:
            raise ValueError(f"got {v}; give 'auto' or a number of threads >= 1")
        return v


class PreflightConfig(_Section):
    """The memory check before training (issue 7)."""

    memory: Literal["check", "warn", "off"] = Field(
        "check", description="estimate memory per node before training: 'check' stops a run that cannot fit, "
                             "'warn' only logs, 'off' skips the estimate")
    memory_fraction: float = Field(0.9, gt=0, le=1, description="share of a node's available memory a run may plan to use")


class Config(_Section):
    """The whole run. ``seed`` is the root of every random stream (see ``huscf_mpi.seeding``)."""

    name: str = "run"
    seed: int = 0
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
    evaluation: EvaluationConfig = EvaluationConfig()
    server: ServerConfig = ServerConfig()
    preflight: PreflightConfig = PreflightConfig()

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: str) -> str:
        from .registry import STRATEGY_MODULES

        if v not in STRATEGY_MODULES:
            raise ValueError(f"unknown strategy {v!r}; choose one of {', '.join(STRATEGY_MODULES)}")
        return v

    @model_validator(mode="after")
    def _check_cuts(self) -> "Config":
        if isinstance(self.cuts, dict):
            extra = sorted(set(self.cuts) - set(range(1, self.data.n_clients + 1)))
            if extra:
                raise ValueError(f"cuts names clients {extra} but clients are 1..{self.data.n_clients}")
            missing = sorted(set(range(1, self.data.n_clients + 1)) - set(self.cuts))
            if missing:
                raise ValueError(f"cuts has no vector for clients {missing}")
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


def _one_line(err: ValidationError) -> str:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"]) or "config"
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        section: Any = Config
        for part in e["loc"][:-1]:
            section = section.model_fields[part].annotation if isinstance(part, str) else section
        known = ", ".join(getattr(section, "model_fields", {})) or "see README, Config reference"
        msg = f"unknown key; known keys here: {known}"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{where}: {msg}{more}"


def _set(d: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    d[leaf] = value


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read ``path`` (the quickstart if None), apply dotted ``overrides`` and validate.

    Raises
    ------
    ConfigError : one line naming the file, the field and the problem.
    """
    src = Path(path) if path is not None else QUICKSTART
    try:
        raw = yaml.safe_load(src.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {src} not found; pass an existing --config or omit it for the quickstart") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{src}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{src}: the top level must be a mapping of sections (data:, model:, training: ...)")
    for key, value in (overrides or {}).items():
        if value is not None:
            _set(raw, key, value)
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{src}: {_one_line(e)}") from None
