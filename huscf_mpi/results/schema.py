"""Layout of a huscf-mpi result file (HDF5, schema version 1).

One file per run, written by rank 0 only. While the run is in progress the file is
``<path>.partial``. The status moves ``running -> complete | failed | interrupted`` once, in
``roles.run.ending`` through ``ResultWriter.close``, and ``complete`` is written only after the
file has been renamed to ``<path>``: a file says "complete" only if it is complete and in
place, and readers (``show``, ``tables``, ``plot``) trust nothing but the status (not the
name). A failed or interrupted run stays at ``<path>.partial``; a run killed outright (SIGKILL,
a node lost) leaves it at "running". ``docs/results.md`` is the user reference.

::

    /                 attrs: schema_version (int), status ("running" | "complete" | "failed" |
                             "interrupted"), error (str: what failed, or which signal stopped the
                             run; "" when complete), created, finished (ISO-8601 UTC, "" while
                             running); when failed or interrupted also stop_phase ("set-up",
                             "training", "final evaluation", "finishing"), rounds_done (int,
                             rounds written), iterations_done (int, of the round after them),
                             and when interrupted stop_signal ("SIGINT" | "SIGTERM" | "SIGUSR1")
    /provenance       attrs: config_yaml (resolved config, YAML text), seed, command, git_commit,
                             git_dirty, versions (JSON object text), mpi_library, n_ranks,
                             hosts (JSON list text), slurm_job_id ("" if none), started, ended
    /domains          (n_domains,) str: ordered domain names; labels generation_score columns
    /partition        table, one row per client: client int32, domain str, size int64,
                      excluded_labels str ("2,5" or "")
    /cuts/cut_vectors (N, 4) int32 = (g_head, g_tail, d_head, d_tail); group attrs: mode (str)
    /rounds/<name>    first axis = round, grown by append; e.g. round (R,), loss_d (R, N),
                      loss_g (R, N), generation_score (R, n_domains), cluster_labels (R, N),
                      kld (R, N), weights (R, N), global_kld (R, N), global_weights (R, N),
                      adjusted_rand_index (R,), wall_seconds (R,) [s],
                      compute_seconds (R, n_ranks) [s], comm_seconds (R, n_ranks) [s],
                      bytes_sent (R, n_ranks) [bytes], bytes_received (R, n_ranks) [bytes]
    /strategy/<name> tables a strategy records at set-up (fslgan: placement, devices)
    /samples/<domain> (R, H, W) uint8 image grid per round ((R, H, W, C) for RGB domains)
    /audio/<domain>   (K·per, samples) int16 waveforms, audio domains only (FSDD): Griffin-Lim of
                      generated spectrograms at the final evaluation; attrs sample_rate [Hz],
                      labels (JSON list, class of each row), source
    /ledger           table, one row per (receiver, kind, source, shape, dtype): receiver int32
                      (rank that received), kind str ("g_smashed", "params_up", "x_fake", ...),
                      plane str (PLANES), payload str (PAYLOADS), source int32 (sending rank),
                      shape str ("64x128x7x7"), dtype str, count int64, bytes int64 (total).
                      Older files lack receiver (read: 0, the server), payload (read:
                      "unknown") and possibly plane.
    /exposure         table, one row per (payload, plane, sender, receiver): payload str
                      (PAYLOADS), plane str (PLANES), sender str and receiver str ("client" |
                      "server"), messages int64, bytes int64: whether each payload class left
                      its owner, and to whom. Absent in older files.
    /final/<domain>   group attrs: scalar final metrics (accuracy, precision, recall, f1, fpr
                      in %, generation_score, classifier_test_accuracy, fid if present,
                      fid_inception only with evaluation.inception_weights, ...)

Tables are groups holding equal-length 1-D datasets, one per column; the group attr
``columns`` lists them in order. Strings are variable-length UTF-8. Attributes whose value
was a dict, list, tuple or None are stored as JSON text and named in the owning object's
``json_attrs`` attr (a JSON list), so readers can decode them.
"""
from __future__ import annotations

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
# Known tables: required columns and their dtypes (STR = variable-length UTF-8).
TABLES: dict[str, dict[str, object]] = {
    PARTITION: {"client": np.int32, "domain": STR, "size": np.int64, "excluded_labels": STR},
    # Older files lack receiver, payload and possibly plane; readers fill LEDGER_DEFAULTS.
    LEDGER: {"receiver": np.int32, "kind": STR, "plane": STR, "payload": STR, "source": np.int32, "shape": STR,
             "dtype": STR, "bytes": np.int64, "count": np.int64},
    EXPOSURE: {"payload": STR, "plane": STR, "sender": STR, "receiver": STR, "messages": np.int64,
               "bytes": np.int64},
}
# String columns whose cells may be given as sequences; they are joined with this separator.
JOINERS = {"excluded_labels": ",", "shape": "x"}

# Known arrays: dtype and trailing shape (None = any length).
ARRAYS: dict[str, tuple[object, tuple]] = {
    CUT_VECTORS: (np.int32, (None, 4)),
}


def partial_path(path: str | Path) -> Path:
    """``<path>.partial``: where a run's file lives until it completes."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)
