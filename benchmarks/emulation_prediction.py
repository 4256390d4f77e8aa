"""Predicted vs measured seconds per iteration of an emulated run (issue 3, SPEC §5).

Usage:
    mpiexec -n 9 huscf-mpi train --config jobs/configs/emulated-paper.yaml --output runs/emulated.h5
    python benchmarks/emulation_prediction.py runs/emulated.h5

Prints the GA's prediction (server at its profile's speed, and at its measured speed, since
only clients are paced), the measured per-iteration wall time on the server (median, mean,
excluding each round's first iteration), the relative errors, and where emulated clients'
real compute was slower than their profile.
"""
import sys

import numpy as np

from huscf_mpi.results import ResultFile


def main(path: str) -> None:
    r = ResultFile(path)
    cuts = r.attrs("cuts")
    measured = r.array("rounds/iteration_seconds")[:, 1:].ravel()  # first iteration of a round warms up
    med, mean = float(np.median(measured)), float(measured.mean())
    print(f"{path}: {r.provenance['n_ranks']} ranks, devices {cuts.get('devices') or 'measured'}, "
          f"emulated {cuts.get('emulated')}")
    profiles = r.table("cuts/profiles")
    vectors = r.array("cuts/cut_vectors")
    for (_, row), v in zip(profiles.iterrows(), vectors):
        print(f"  client {row['client']:>2} {row['profile']:<8} {row['flops_per_s'] / 1e9:7.2f} GFLOP/s "
              f"{row['link_bytes_per_s'] / 1e6:7.1f} MB/s  cuts {tuple(int(x) for x in v)}")
    print(f"measured s/iteration: median {med:.4f}, mean {mean:.4f} over {measured.size} iterations")
    for key in ("predicted_seconds_per_iteration", "predicted_seconds_per_iteration_measured_server"):
        p = float(cuts[key])
        print(f"{key}: {p:.4f} s -> error of the prediction vs median measured: {100 * (p - med) / med:+.1f} %")
    over = r.array("rounds/emulation_overrun_seconds")[-1]
    print("compute overrun beyond the profile (real hardware slower), seconds per client over the run:",
          np.round(over, 2).tolist())


if __name__ == "__main__":
    main(sys.argv[1])
