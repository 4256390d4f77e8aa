"""Command line: ``huscf-mpi train | show | ...``.

Bad input (config, data, rank count, paths) ends with one line on stderr naming the field and
the fix, and exit status 2; never a traceback. Only rank 0 prints such lines.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import launch, process
from .logs import setup_logging

EXIT_USAGE = 2


def _fail(message: str, rank: int = 0) -> None:
    if rank == 0:
        click.echo(f"huscf-mpi: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def usage_line(e: click.UsageError) -> str:
    """A click usage error as one line naming the option: ``--seed: 'abc' is not a valid integer``."""
    param = getattr(e, "param", None)
    if isinstance(e, click.BadParameter) and param is not None:
        opts = [o for o in getattr(param, "opts", ()) if o.startswith("--")] or list(getattr(param, "opts", ()))
        name = opts[0] if opts and isinstance(param, click.Option) else param.human_readable_name
        text = f"{name}: {e.message}"
    else:
        text = e.format_message()
    text = " ".join(text.split()).rstrip(".")
    where = e.ctx.command_path if e.ctx is not None else "huscf-mpi"
    return f"{text}; see {where} --help"


class _UsageLine(click.ClickException):
    """A click usage error shown as one line, like every other bad input (exit status 2)."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:
        click.echo(f"huscf-mpi: error: {self.message}", err=True)


class _Group(click.Group):
    """click's usage errors (bad option values, unknown options or commands) as one line."""

    @staticmethod
    def _one_line(e: click.UsageError) -> click.ClickException:
        if type(e).__name__ == "NoArgsIsHelpError":  # plain `huscf-mpi`: click shows the help
            return e
        return _UsageLine(usage_line(e))

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            raise self._one_line(e) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            raise self._one_line(e) from None


class CutsType(click.ParamType):
    """``--cuts``: a mode name, or 4 comma-separated block numbers (a list of ints)."""

    name = "cuts"

    def convert(self, value, param, ctx):
        if not isinstance(value, str) or "," not in value:
            return value  # a mode (or a list already): the config checks it
        try:
            return [int(v) for v in value.split(",")]
        except ValueError:
            self.fail(f"{value!r} is not 4 comma-separated block numbers [g_head, g_tail, d_head, d_tail]; "
                      "e.g. 2,4,1,5, or a mode: ga, uniform-min, uniform-max, random", param, ctx)


# train's options that override a config field: parameter -> (dotted field, option).
TRAIN_OVERRIDES = {
    "seed": ("seed", "--seed"), "output": ("output", "--output"), "name": ("name", "--name"),
    "strategy": ("strategy", "--strategy"), "rounds": ("training.rounds", "--rounds"),
    "local_epochs": ("training.local_epochs", "--local-epochs"),
    "iterations_per_epoch": ("training.iterations_per_epoch", "--iterations-per-epoch"),
    "batch_size": ("training.batch_size", "--batch-size"), "width": ("model.width", "--width"),
    "body_norm": ("model.body_norm", "--body-norm"),
    "max_samples_per_client": ("data.max_samples_per_client", "--max-samples-per-client"), "cuts": ("cuts", "--cuts"),
    "mode": ("training.mode", "--mode"), "buffer": ("training.buffer", "--buffer"),
    "deadline_ms": ("training.deadline_ms", "--deadline-ms"), "replay": ("training.replay", "--replay"),
    "checkpoint_every": ("training.checkpoint_every", "--checkpoint-every"),
}


def train_overrides(params: dict, prefix: str = "") -> tuple[dict, dict]:
    """``load_config`` overrides and the options to blame (``prefix`` before each) from train's parameters."""
    overrides = {field: params.get(p) for p, (field, _) in TRAIN_OVERRIDES.items()}
    options = {field: prefix + option for field, option in TRAIN_OVERRIDES.values()}
    return overrides, options


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
@click.option("--body-norm", type=click.Choice(["batch", "group", "layer", "none"]), default=None,
              help="norm of the blocks the server can run (model.body_norm): batch = BatchNorm (SPEC §2, default); "
              "group, layer = GroupNorm, per sample, the same in every mode; none")
@click.option("--max-samples-per-client", type=int, default=None, help="cap each client's shard")
@click.option("--name", default=None, help="run name (used in the default output path)")
@click.option("--strategy", default=None, metavar="NAME",
              help="the method: huscf (default), fedgan, mdgan, fslgan or centralized (the config's `strategy`)")
@click.option("--cuts", "cuts", type=CutsType(), default=None, metavar="MODE|G_HEAD,G_TAIL,D_HEAD,D_TAIL",
              help="cut vector for every client (e.g. 2,4,1,5) or a mode: ga (SPEC §5), uniform-min, uniform-max, random")
@click.option("--mode", type=click.Choice(["sync", "buffered", "sequential"]), default=None,
              help="how the server serves clients (training.mode): sync = lock-step (default); buffered = the first "
              "--buffer clients ready; sequential = one at a time")
@click.option("--buffer", type=int, default=None, metavar="K", help="buffered mode: clients per buffer (training.buffer)")
@click.option("--deadline-ms", type=float, default=None, metavar="MS",
              help="buffered mode: close a buffer MS after its first arrival (training.deadline_ms)")
@click.option("--replay", default=None, metavar="FILE",
              help="repeat a buffered or sequential run bit for bit from its result file (training.replay)")
@click.option("--checkpoint-every", type=int, default=None, metavar="R",
              help="checkpoint after every R rounds and the last (training.checkpoint_every; 0 = none)")
@click.option("--resume", default=None, metavar="PATH",
              help="continue a stopped run from its last checkpoint: give its <output>.partial (or <output>.ckpt); "
              "its config is the stopped run's (--config and options may only repeat it)")
@click.option("--busy-wait", is_flag=True, help="block in MPI waits instead of polling with sleeps "
              "(faster with one core per rank, wasteful when ranks outnumber cores)")
@click.option("-v", "--verbose", is_flag=True, help="info-level logs from every rank, not just rank 0")
def train(config_path, data_root, output, overwrite, seed, rounds, local_epochs, iterations_per_epoch,
          batch_size, width, body_norm, max_samples_per_client, name, strategy, cuts, mode, buffer, deadline_ms,
          replay, checkpoint_every, resume, busy_wait, verbose):
    """Train HuSCF-GAN or a baseline. Launch with mpiexec: 1 server rank + one rank per client.

    Every method (--strategy huscf | fedgan | mdgan | centralized) uses the same ranks,
    partition, seeds, evaluation and result schema, so their files compare in `tables`.

    Writes one HDF5 result file (rank 0): provenance, partition, cut vectors, per-round
    losses, generation scores, clusters, KLD weights, timings, bytes, the message ledger,
    sample grids and the final synthetic-data classification metrics.

    \b
    Stopping: SIGINT (Ctrl-C) or SIGTERM to mpiexec stops the run at rank 0's next wait;
    SIGUSR1 (SLURM's --signal warning) first finishes the round and its checkpoint. The file
    stays at <output>.partial with status "interrupted", and mpiexec exits 128 + the signal
    number (130, 143, 138). A crash leaves it "failed" (exit 1).

    \b
    Resuming: every training.checkpoint_every rounds (default 1) each rank saves its state
    to <output>.ckpt/. A stopped run (interrupted, failed or killed) continues from there,
    with as many ranks, appending to the same result file:
        mpiexec -n 3 huscf-mpi train --resume results/run-s0.h5.partial
    In synchronous mode it then gives the numbers of an uninterrupted run, bit for bit.
    """
    launch.prepare_rank()
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    setup_logging(rank, verbose)
    from .config import load_config, view
    from .errors import UsageError

    overrides, options = train_overrides(dict(
        seed=seed, output=output, name=name, strategy=strategy, rounds=rounds, local_epochs=local_epochs,
        iterations_per_epoch=iterations_per_epoch, batch_size=batch_size, width=width, body_norm=body_norm,
        max_samples_per_client=max_samples_per_client, cuts=cuts, mode=mode, buffer=buffer,
        deadline_ms=deadline_ms, replay=replay, checkpoint_every=checkpoint_every))
    try:
        found = None
        if resume is not None:
            from .checkpoint.files import find
            from .config import resumed_config

            try:
                found = find(resume)
            except ValueError as e:
                raise UsageError(str(e)) from None
            cfg = resumed_config(found[1].config_yaml, f"--resume {resume}", config_path, overrides, options)
        else:
            cfg = load_config(config_path, overrides, options)
    except UsageError as e:
        launch.hand_over({"exit": EXIT_USAGE})
        _fail(str(e), rank)
    run = dict(data_root=data_root, overwrite=overwrite, poll_sleep_max=0.0 if busy_wait else 1e-3)
    # client ranks started by launch.main get the run from here, as plain values (no pydantic)
    launch.hand_over({"run": dict(run, config=view(cfg), resume=found, verbose=verbose)})
    try:
        launch.train(cfg, found, **run)
    except UsageError as e:
        _fail(str(e), rank)


@main.command()
@click.option("--devices", type=click.Path(exists=True, dir_okay=False), default="jobs/devices/paper.yaml",
              show_default=True, help="device profiles YAML (server + client profiles, SPEC §5)")
@click.option("--clients", type=click.IntRange(1), default=80, show_default=True, help="number of clients N")
@click.option("--seed", type=int, default=0, show_default=True, help="seeds profile assignment and GA")
@click.option("--width", type=float, default=1.0, show_default=True, help="model width (1.0 = paper model)")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--cost-mode", type=click.Choice(["true", "reference"]), default="true", show_default=True,
              help="FLOPs from torch's counter, or the original code's hand table (paper's 7.68 s)")
@click.option("--population", type=click.IntRange(2), default=1000, show_default=True)
@click.option("--generations", type=click.IntRange(0), default=1000, show_default=True)
@click.option("--stall", type=click.IntRange(1), default=100, show_default=True,
              help="stop after this many generations without improvement")
def cuts(devices, clients, seed, width, batch_size, cost_mode, population, generations, stall):
    """Choose every client's cut vector with the GA, without MPI (SPEC §5).

    \b
    Prints the cut vector per device profile and the predicted seconds per iteration, e.g.
        huscf-mpi cuts --devices jobs/devices/paper.yaml --clients 80 --seed 0
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import yaml

    from .cuts import cuts_command

    try:
        click.echo(cuts_command(Path(devices), clients, seed, width, batch_size, cost_mode, population,
                                generations, stall))
    except (ValueError, KeyError, OSError) as e:
        _fail(f"{devices}: {' '.join(str(e).split())}")
    except yaml.YAMLError as e:
        from .config import _yaml_problem

        _fail(f"--devices {devices}: {_yaml_problem(e)}; give a YAML like jobs/devices/paper.yaml")


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML config: model, width and batch size to profile (default: the quickstart)")
@click.option("--batch-size", type=int, default=None, help="override training.batch_size")
@click.option("--width", type=float, default=None, help="override model.width")
def profile(config_path, batch_size, width):
    """Measure every rank without training: per-block seconds and the link to rank 0.

    \b
    Launch with mpiexec, any number of ranks >= 2:
        mpiexec -n 5 huscf-mpi profile --config jobs/configs/scenario6.yaml
    """
    process.openmp_env()
    process.single_node_ucx()
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    from .config import load_config
    from .errors import UsageError

    try:
        cfg = load_config(config_path, {"training.batch_size": batch_size, "model.width": width},
                          {"training.batch_size": "--batch-size", "model.width": "--width"})
    except UsageError as e:
        _fail(str(e), rank)
    if MPI.COMM_WORLD.Get_size() < 2:
        _fail("profile measures links to rank 0: run it with mpiexec -n 2 or more", rank)
    import torch

    from .comm import MPITransport
    from .models import domain_architecture
    from .roles.cut_setup import measure_ranks
    from .roles.threads import available_cores, server_threads

    # Rank 0 is timed with the threads it would train with, since the GA uses its speed.
    torch.set_num_threads(server_threads(cfg.server.threads, available_cores()) if rank == 0 else 1)
    try:
        arch = domain_architecture(cfg.model.architecture, cfg.data.domains, cfg.model.body_norm)
    except (KeyError, ValueError, UsageError) as e:
        _fail(str(e).strip("'\""), rank)
    costs, times, links = measure_ranks(cfg, arch, MPITransport(MPI.COMM_WORLD))
    if rank == 0:
        total = sum(float(c.forward_flops.sum() + c.backward_flops.sum()) for c in costs.values())
        click.echo(f"{arch.name} width {cfg.model.width:g}, batch {cfg.training.batch_size}: "
                   f"{total / 1e9:.3f} GFLOP per forward+backward of every block ({cfg.cut_selection.cost_mode} FLOPs)")
        nets = [(n, b) for n in ("g", "d") for b in range(1, len(costs[n].forward_flops) + 1)]
        click.echo("rank  GFLOP/s  link MB/s  latency us  " + " ".join(f"{n.upper()}{b} f/b ms".rjust(14) for n, b in nets))
        for r, t in enumerate(times):
            link = links.get(r, (0.0, float("nan")))
            cells = " ".join(f"{t.forward[n][b - 1] * 1e3:6.2f}/{t.backward[n][b - 1] * 1e3:<7.2f}" for n, b in nets)
            click.echo(f"{r:>4} {total / t.total() / 1e9:8.2f} {link[1] / 1e6:10.1f} {link[0] * 1e6:11.1f}  {cells}")


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
