"""Message kinds: one MPI tag per kind, declared by whoever sends it (ARCHITECTURE seam 1).

A :class:`Kind` names a message, fixes its MPI tag, its *plane* and its *payload class*:

- planes: ``protocol`` (what the algorithm exchanges while training), ``evaluation`` (what
  scoring a generator moves, e.g. a generator's parameters to an evaluating client),
  ``report`` (what the benchmark harness needs for its result file: losses, timings, metrics,
  the optional sample grid) and ``setup`` (link probes at start-up);
- payload classes (:data:`PAYLOADS`): what the bytes *are*, so the result file can say who saw
  what (issue 12, point 6): raw images, real labels, synthetic images, sampled labels,
  smashed data (activations and gradients with respect to them), gradients with respect to
  images, model parameters, losses, metrics, link probes, control (an asynchronous server's
  iteration grants: no data).

Every kind is registered once in :data:`REGISTRY` by its tag; a second kind with the same tag
or name raises, so strategies cannot collide silently. Engine kinds live here; each strategy
declares its own in its module (tag ranges: engine 70-79, profiling 900, HuSCF-GAN 10-69,
FedGAN 100-119, MD-GAN 200-219, centralized 300-319, FSL-GAN 400-419, tests 1000+). Tags 32000
(a crashed rank's report to rank 0, :data:`huscf_mpi.stopping.CRASH_TAG`) and 32001 (a rank's
checkpoint report, :data:`CHECKPOINT_TAG`) are reserved: no kinds, they bypass the transport and
the ledger.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..stopping import CRASH_TAG

# Raw MPI tag of a rank's checkpoint report to rank 0 (huscf_mpi.roles.checkpointing).
CHECKPOINT_TAG = 32001

PLANES = ("protocol", "evaluation", "report", "setup")
PAYLOADS = ("raw_images", "real_labels", "synthetic_images", "sampled_labels", "smashed_data",
            "image_gradients", "parameters", "losses", "metrics", "probe", "control")

REGISTRY: dict[int, "Kind"] = {}


@dataclass(frozen=True)
class Kind:
    """A message kind.

    Attributes
    ----------
    name : lower-case name, unique (the ledger's ``kind`` column).
    tag : the MPI tag, unique, 0..32767 (the MPI standard's guaranteed tag range).
    plane : one of :data:`PLANES`.
    payload : one of :data:`PAYLOADS`.
    """

    name: str
    tag: int
    plane: str
    payload: str

    def __int__(self) -> int:
        return self.tag

    @property
    def label(self) -> str:
        return self.name


def kind(name: str, tag: int, plane: str, payload: str) -> Kind:
    """Register and return a new kind. Raises ``ValueError`` on a bad plane/payload or a clash."""
    if plane not in PLANES:
        raise ValueError(f"kind {name}: plane {plane!r} is not one of {PLANES}")
    if payload not in PAYLOADS:
        raise ValueError(f"kind {name}: payload {payload!r} is not one of {PAYLOADS}")
    if not 0 <= tag <= 32767:
        raise ValueError(f"kind {name}: tag {tag} outside 0..32767")
    if tag in (CRASH_TAG, CHECKPOINT_TAG):
        raise ValueError(f"kind {name}: tag {tag} is reserved for crash and checkpoint reports")
    new = Kind(name, tag, plane, payload)
    old = REGISTRY.get(tag)
    if old is not None and old != new:
        raise ValueError(f"kind {name}: tag {tag} already used by {old.name}")
    if any(k.name == name and k.tag != tag for k in REGISTRY.values()):
        raise ValueError(f"kind {name}: name already registered with another tag")
    REGISTRY[tag] = new
    return new


def by_tag(tag: int) -> Kind:
    """The registered kind of ``tag``; ``KeyError`` if none."""
    return REGISTRY[int(tag)]


# Engine kinds (report plane): every client, every round; evaluating clients at evaluations.
ROUND_STATS = kind("round_stats", 70, "report", "losses")     # float64: mean losses, seconds, bytes, memory
EVAL_SCALARS = kind("eval_scalars", 71, "report", "metrics")  # float64: generation score, final metrics
SAMPLE_GRID = kind("sample_grid", 72, "report", "synthetic_images")  # uint8 grid, only if evaluation.sample_grid
ITERATION_SECONDS = kind("iteration_seconds", 73, "report", "metrics")  # float64 (iterations,): this round's
# int16 (K·per, samples): Griffin-Lim waveforms of generated spectrograms, audio domains' final evaluation.
AUDIO_CLIPS = kind("audio_clips", 74, "report", "synthetic_images")
PING = kind("ping", 900, "setup", "probe")                    # link probes of `cuts: ga` profiling
