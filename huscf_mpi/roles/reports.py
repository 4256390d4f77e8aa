"""Layouts of the report-plane messages, and when they are sent (shared by server and clients)."""
from __future__ import annotations

import math
import resource

# ROUND_STATS (float64), every client, every round: these engine fields, then the strategy's
# own ``client_values`` (see round_stats_fields).
ROUND_STATS = ("loss_d", "loss_g", "compute_seconds", "comm_seconds", "train_seconds", "bytes_sent",
               "bytes_received", "max_rss_bytes", "private_dirty_bytes", "emulation_overrun_seconds",
               "emulation_overrun_sections")
# EVAL_SCALARS (float64), evaluating clients; NaN where not computed (the server keeps finite values
# only, so e.g. fid_inception, computed only with evaluation.inception_weights, is then absent).
SCALARS = ("generation_score", "accuracy", "precision", "recall", "f1", "fpr", "fid", "fid_inception",
           "classifier_test_accuracy")


def round_stats_fields(strategy) -> tuple[str, ...]:
    """Names of the ROUND_STATS vector for ``strategy`` (a :class:`~huscf_mpi.strategies.Strategy`)."""
    return ROUND_STATS + tuple(strategy.client_values)


def evaluation_due(round_index: int, every: int, rounds: int) -> bool:
    """Whether round ``round_index`` (1-based) is scored: every ``every`` rounds and the last."""
    return round_index % every == 0 or round_index == rounds


def grid_shape(n_classes: int, image_shape: tuple[int, int, int], per_class: int) -> tuple[int, ...]:
    """SAMPLE_GRID (uint8) shape: (K·H, per·W) for one channel, (K·H, per·W, C) for more (RGB).

    K is the evaluated domain's own class count (``data.registry``), so both ends agree."""
    c, h, w = image_shape
    return (n_classes * h, per_class * w) if c == 1 else (n_classes * h, per_class * w, c)


def audio_clip_count(n_classes: int, per_class: int, synthetic_samples: int) -> int:
    """Rows of AUDIO_CLIPS: ``per_class`` clips of each of K classes, fewer if the final
    evaluation's uniform labels (``arange(n) % K``) give a class fewer samples than that."""
    return n_classes * min(per_class, synthetic_samples // n_classes)


def n_chunks(n_samples: int, chunk: int) -> int:
    """Generation messages needed for ``n_samples`` at ``chunk`` samples each (last one padded)."""
    return math.ceil(n_samples / chunk)


def max_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def private_dirty_bytes() -> int:
    """Memory only this process has written (``Private_Dirty`` of ``/proc/self/smaps_rollup``).

    Pages shared with other ranks (the torch libraries, the memory-mapped decoded datasets)
    are not in it, so it is what one more rank on a node costs; RSS counts them on every
    rank. Returns -1 where the file does not exist (not Linux, or a kernel before 4.14).
    """
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("Private_Dirty:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return -1
