"""Command line: ``huscf-mpi train | show | ...``.

Bad input (config, data, rank count, paths) ends with one line on stderr naming the field and
the fix, and exit status 2; never a traceback. Only rank 0 prints such lines.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

EXIT_USAGE = 2


class _RankFilter(logging.Filter):
    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank

    def filter(self, record):
        record.rank = self.rank
        return True


class _TqdmHandler(logging.StreamHandler):
    """Log lines that do not tear rank 0's progress bar."""

    def emit(self, record):
        from tqdm import tqdm
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001
            self.handleError(record)


def _setup_logging(rank: int, verbose: bool) -> None:
    handler = _TqdmHandler() if rank == 0 else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [rank %(rank)d] %(levelname)s %(message)s", "%H:%M:%S"))
    handler.addFilter(_RankFilter(rank))
    logger = logging.getLogger("huscf_mpi")
    logger.handlers[:] = [handler]
    logger.propagate = False
    # Clients log only warnings unless -v: with 100 ranks, per-client info lines drown the server's.
    logger.setLevel(logging.INFO if rank == 0 or verbose else logging.WARNING)


def _fail(message: str, rank: int = 0) -> None:
    if rank == 0:
        click.echo(f"huscf-mpi: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="huscf-mpi")
def main():
    """HuSCF-GAN over MPI: rank 0 is the server, ranks 1..N are clients.

    \b
    Quickstart (4 MNIST clients, a few minutes on a laptop):
        mpiexec -n 5 huscf-mpi train
    Paper-scale scenario 6 (80 clients):
        mpiexec -n 81 huscf-mpi train --config jobs/configs/scenario6.yaml
    Inspect a result file:
        huscf-mpi show results/quickstart-s0.h5
    """


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML config (default: the packaged quickstart). See README, 'Config reference'.")
@click.option("--data-root", default=None, help="dataset folder (else $HUSCF_DATA_ROOT, else ./data)")
@click.option("--output", default=None, help="result HDF5 path; {name} and {seed} expand")
@click.option("--overwrite", is_flag=True, help="replace an existing result file")
@click.option("--seed", type=int, default=None, help="root seed of every random stream")
@click.option("--rounds", type=int, default=None, help="federation rounds (training.rounds)")
@click.option("--local-epochs", type=int, default=None, help="local epochs per round (training.local_epochs)")
@click.option("--iterations-per-epoch", type=int, default=None, help="override the epoch length")
@click.option("--batch-size", type=int, default=None, help="per-client batch (training.batch_size)")
@click.option("--width", type=float, default=None, help="model width multiplier (1.0 = paper model)")
@click.option("--max-samples-per-client", type=int, default=None, help="cap each client's shard")
@click.option("--name", default=None, help="run name (used in the default output path)")
@click.option("--busy-wait", is_flag=True, help="block in MPI waits instead of polling with sleeps "
              "(faster with one core per rank, wasteful when ranks outnumber cores)")
@click.option("-v", "--verbose", is_flag=True, help="info-level logs from every rank, not just rank 0")
def train(config_path, data_root, output, overwrite, seed, rounds, local_epochs, iterations_per_epoch,
          batch_size, width, max_samples_per_client, name, busy_wait, verbose):
    """Train HuSCF-GAN. Launch with mpiexec: 1 server rank + one rank per client.

    Writes one HDF5 result file (rank 0): provenance, partition, cut vectors, per-round
    losses, generation scores, clusters, KLD weights, timings, bytes, the message ledger,
    sample grids and the final synthetic-data classification metrics.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    _setup_logging(rank, verbose)
    from .config import load_config
    from .errors import UsageError

    overrides = {"seed": seed, "output": output, "name": name, "training.rounds": rounds,
                 "training.local_epochs": local_epochs, "training.iterations_per_epoch": iterations_per_epoch,
                 "training.batch_size": batch_size, "model.width": width,
                 "data.max_samples_per_client": max_samples_per_client}
    try:
        cfg = load_config(config_path, overrides)
        from .roles import train as run_train  # torch loads only for a valid config

        run_train(cfg, data_root=data_root, overwrite=overwrite, poll_sleep_max=0.0 if busy_wait else 1e-3)
    except UsageError as e:
        _fail(str(e), rank)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def show(file):
    """Print a readable summary of a result FILE (also works on an incomplete .partial)."""
    from .results.show import summary

    try:
        click.echo(summary(Path(file)))
    except (OSError, ValueError) as e:
        _fail(f"{file}: {e}")


from .cli_analysis import plot, slurm, tables  # noqa: E402

main.add_command(tables)
main.add_command(plot)
main.add_command(slurm)


if __name__ == "__main__":
    main()
