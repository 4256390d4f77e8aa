"""``huscf-mpi tables | plot | slurm``: benchmark tables, figures and SLURM batch scripts.

Standalone click commands, registered on the main group in ``huscf_mpi.cli``. Bad input ends
with one line on stderr and exit status 2 (click's usage-error convention), never a traceback.
"""
from __future__ import annotations

import shlex
from pathlib import Path

import click

from .slurm import SIGNAL_GRACE  # the module imports only the standard library

_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fields(values) -> list[str] | None:
    """``--by a,b --by c`` -> ["a", "b", "c"] (None when not given)."""
    out = [f.strip() for v in values or () for f in v.split(",") if f.strip()]
    return out or None


class _Fail(click.ClickException):
    exit_code = 2

    def format_message(self) -> str:
        return self.message

    def show(self, file=None) -> None:
        click.echo(f"huscf-mpi: error: {self.format_message()}", err=True)


def _emit(text: str, out: str | None) -> None:
    """Write ``text`` to ``out`` (saying so on stderr), or print it."""
    if out:
        try:
            Path(out).write_text(text)
        except OSError as e:
            raise _Fail(f"--out {out}: {e.strerror or e}") from None
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)


@click.command(context_settings=_SETTINGS)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--by", multiple=True, metavar="FIELD[,FIELD]",
              help="config fields labelling the rows, dotted for nested ones (cuts, data.scenario, "
                   "model.width, training.rounds), or strategy (its name: HuSCF-GAN, FedGAN, MD-GAN, "
                   "Centralized) and name (the runs' names); repeatable. Default: the fields that "
                   "differ between the groups; with several strategies, the strategy's name first, "
                   "then the run name where runs of one strategy differ by name (ablations).")
@click.option("--metrics", default=None, metavar="NAME[,NAME]",
              help="columns to show, in this order: generation_score, fid, fid_inception, accuracy, precision, "
                   "recall, f1, fpr (per domain), predicted_s_per_it, measured_s_per_it, train_s, mib_moved. "
                   "Default: all that the files have.")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "latex"]), default="md", show_default=True,
              help="md (GitHub table), csv (mean and std columns, machine-readable) or latex (booktabs tabular).")
@click.option("--reference", type=click.Choice(["none", "paper"]), default="none", show_default=True,
              help="paper: add the HuSCF-GAN accuracies of the paper's original code (SPEC §7) for "
                   "each scenario present, as rows 'paper (HuSCF-GAN, original code), scenario N'.")
@click.option("--exposure", is_flag=True,
              help="add a 'who saw what' column from the files' /exposure tables (protocol and "
                   "evaluation planes), e.g. 'smashed c↔s; params c↔s': payload classes that left "
                   "their owner and where to (c client, s server, c↔s both ways; raw, labels, synth, "
                   "sampled, smashed, grads, params, losses, metrics, probe = raw_images, real_labels, "
                   "synthetic_images, sampled_labels, smashed_data, image_gradients, parameters, losses, "
                   "metrics, probe). Classes not named never left their owner; '–': no /exposure.")
@click.option("--allow-incomplete", is_flag=True,
              help="include failed or unfinished runs (.partial files); their rows say "
                   "'(incomplete: k of n)'. Default: refuse them.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="write the table to this file instead of stdout")
@click.option("--time-to-gs", "gs_threshold", type=float, default=None, metavar="T",
              help="add 's to GS' per domain: training wall seconds until the generation score first reached T "
                   "(compares sync, buffered and sequential runs)")
def tables(files, by, metrics, fmt, reference, exposure, allow_incomplete, gs_threshold, out):
    """Benchmark table from result FILES: one row per configuration, mean ± std over seeds.

    Runs whose configs differ only in seed, name or output path form one group (row); n is the
    number of runs in it. Each cell is the mean ± sample standard deviation (n-1) over the
    group's runs; '(n=k)' follows it when only k runs have that value, and '–' means none has.
    Per domain: final generation score (GS), FID on the domain classifier's features
    ("FID (clf)", SPEC §6), FID on Inception-v3 features ("FID (Inception)", only in runs with
    evaluation.inception_weights), and accuracy / macro precision / recall / F1 / FPR (%) of the
    classifier trained on synthetic data, tested on real data. Per run:
    predicted and measured seconds per iteration, training wall time (sum of round wall
    times), MiB moved (bytes sent by all ranks over all rounds). With --exposure, a last
    column says who saw what. Rows of different strategies are labelled by strategy name
    (HuSCF-GAN, FedGAN, MD-GAN, Centralized); csv also has a 'strategy' column.

    The best mean per column (highest; lowest for FID, FPR, times and bytes) is bold in md and
    latex; csv lists the column ids where a row is best in its 'best' column. Files of
    different schema versions are never mixed.

    \b
    Examples:
        huscf-mpi tables results/*.h5
        huscf-mpi tables results/scenario6-*.h5 --reference paper
        huscf-mpi tables results/*.h5 --by cuts --metrics accuracy,f1,train_s --format latex -o table.tex
        huscf-mpi tables results/*.h5 --format csv > table.csv
        huscf-mpi tables results/*.h5 --by strategy,name --exposure
        huscf-mpi tables results/async/*.h5 --by training.mode --time-to-gs 3
    """
    from .analysis.tables import make_table

    try:
        text, notes = make_table(files, by=_fields(by), metrics=metrics, fmt=fmt,
                                 reference=None if reference == "none" else reference,
                                 allow_incomplete=allow_incomplete, exposure=exposure, gs_threshold=gs_threshold)
    except (ValueError, OSError) as e:
        raise _Fail(str(e)) from None
    for note in notes:
        click.echo(f"note: {note}", err=True)
    _emit(text, out)


@click.command(context_settings=_SETTINGS)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="folder for the PNG files (created if missing)")
@click.option("--by", multiple=True, metavar="FIELD[,FIELD]",
              help="config fields labelling the run groups, as in `huscf-mpi tables --by`")
@click.option("--allow-incomplete", is_flag=True, help="include failed or unfinished runs (labelled so)")
def plot(files, out_dir, by, allow_incomplete):
    """Figures (PNG) from result FILES, runs grouped by configuration as in `tables`.

    Lines, legends and panel titles carry the same labels as the table rows (strategy names
    with several strategies; see `huscf-mpi tables --help`, --by).

    \b
    Writes into --out:
      generation_score.png  generation score per round and domain; line = mean over seeds,
                            band = lowest..highest seed
      losses.png            D and G loss per round (mean over clients), same style
      time_per_rank.png     per rank: compute / MPI communication / idle seconds, stacked
      cut_vectors.png       cut vector per device profile (or per client)
      clusters.png          cluster label of each client in each round
      samples.png           last round's generated samples per domain and group
    Figures whose data the files lack are skipped with a note.

    \b
    Example:
        huscf-mpi plot results/*.h5 --out figures/
    """
    from .analysis.plots import plot_all

    try:
        written, notes = plot_all(files, out_dir, by=_fields(by), allow_incomplete=allow_incomplete)
    except ValueError as e:
        raise _Fail(str(e)) from None
    except OSError as e:  # result files are read above (errors there are ValueError): this is --out
        raise _Fail(f"--out {out_dir}: {e.strerror or e}") from None
    for note in notes:
        click.echo(f"note: {note}", err=True)
    for path in written:
        click.echo(str(path))


@click.command(context_settings=_SETTINGS)
@click.option("--config", "config_paths", multiple=True, type=click.Path(dir_okay=False),
              help="run config; written into the script as given (relative = relative to the sbatch directory). "
                   "Repeat it, with --seeds, for one array job over configs x seeds. Required unless --resume")
@click.option("--resume", default=None, metavar="PATH",
              help="render a script that continues a stopped run instead: give its <output>.partial (or "
                   "<output>.ckpt); it runs huscf-mpi train --resume with the stopped run's ranks, config and "
                   "result file. Not with --config, --array or --seeds")
@click.option("--ntasks", type=int, default=None,
              help="MPI ranks: 1 server + the config's clients (the default; other values are refused)")
@click.option("--time", "time_limit", default="24:00:00", show_default=True,
              help="wall-clock limit (HH:MM:SS, D-HH:MM:SS or minutes)")
@click.option("--signal-grace", type=int, default=SIGNAL_GRACE, show_default=True, metavar="SECONDS",
              help="SLURM signals the script (USR1) this long before --time ends; the run then finishes its round "
                   "and checkpoint and stops (so give more than a round takes), and the job requeues itself to "
                   "resume from there (HUSCF_REQUEUE=0 in the job's environment: it stays stopped). 0: no signal "
                   "and no requeue")
@click.option("--array", default=None, metavar="SPEC",
              help="array job over seeds, e.g. 0-4: task i runs --seed i and writes "
                   "results/<name>-<array job id>-<i>.h5")
@click.option("--seeds", default=None, metavar="SPEC",
              help="one array job over every --config x seed, e.g. 0-2 or 0,5,9 (needed with several "
                   "--config; not with --array): task i runs config i // n_seeds (in --config order) with "
                   "seed i % n_seeds and writes results/<name>-<array job id>-<config stem>-s<seed>.h5. All "
                   "configs must need the same number of ranks")
@click.option("--launcher", type=click.Choice(["mpiexec", "srun"]), default="mpiexec", show_default=True,
              help="mpiexec -n $SLURM_NTASKS (the venv's MPICH Hydra) or srun --mpi=pmi2; see jobs/README.md")
@click.option("--partition", default=None, help="SLURM partition")
@click.option("--job-name", default=None,
              help="job name, also used in result file names (default: config stem; 'compare' for several)")
@click.option("--nodes", default=None, help="--nodes for SLURM, e.g. 1 or 2-4")
@click.option("--overcommit", is_flag=True, help="allow more ranks than CPUs (small tests on few cores)")
@click.option("--mem-per-cpu", default=None, help="memory per rank, e.g. 2G (each rank holds torch and its data)")
@click.option("--server-node", is_flag=True,
              help="heterogeneous job: rank 0 alone on a whole node (its body computations use the node's "
                   "cores, server.threads: auto), the clients in a second component with one CPU each; "
                   "--nodes, --overcommit and --mem-per-cpu then apply to the clients. Not with --array "
                   "or --seeds.")
@click.option("--server-cpus", type=int, default=None, metavar="N",
              help="with --server-node: rank 0's CPUs (--cpus-per-task), hence its threads under "
                   "server.threads: auto. Default: all CPUs of its node")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write the script here instead of stdout")
@click.argument("train_args", nargs=-1, type=click.UNPROCESSED)
def slurm(config_paths, resume, ntasks, time_limit, signal_grace, array, seeds, launcher, partition, job_name, nodes,
          overcommit, mem_per_cpu, server_node, server_cpus, out, train_args):
    """Render a SLURM batch script that runs `huscf-mpi train` for a config.

    The script asks for one task (one CPU) per rank, sets one thread per rank, activates the
    project's .venv (relative to the submit directory, or $HUSCF_VENV) and writes
    results/<name>-<job id>.h5 (arrays: results/<name>-<array job id>-<index>.h5, with the
    index as seed). Arguments after `--` are passed on to `huscf-mpi train`.

    With --server-node it is a heterogeneous job instead: rank 0 gets a whole node (all its
    CPUs, or --server-cpus N of them) and the clients one CPU each; see jobs/README.md,
    "Rank 0 on its own node".

    To compare methods, give several --config and --seeds: one array job over configs x seeds,
    in which a table in the script gives task i config i // n_seeds and seed i % n_seeds (with
    3 seeds: tasks 0-2 the first config, 3-5 the second, ...). The configs must need the same
    number of ranks; see jobs/README.md, "Comparing methods".

    Every script asks SLURM for USR1 --signal-grace seconds before its time limit and passes it
    on to the run, which finishes its round and checkpoint and stops; the job then requeues
    itself (same job id, same result file) and resumes. With HUSCF_REQUEUE=0 in the
    job's environment it stays stopped instead: render a script that continues it with
    --resume <its .partial>. See jobs/README.md, "Wall-time limits, signals and resuming".

    \b
    Examples:
        huscf-mpi slurm --config jobs/configs/scenario6.yaml --time 2-00:00:00 > jobs/scenario6.sbatch
        huscf-mpi slurm --config jobs/configs/scenario1.yaml --array 0-4 --out jobs/seeds-array.sbatch
        huscf-mpi slurm --config my.yaml --nodes 1 --overcommit --launcher srun -- --rounds 2
        huscf-mpi slurm --config jobs/configs/scenario1.yaml --server-node --nodes 2 --mem-per-cpu 2G
        huscf-mpi slurm --config jobs/configs/compare/huscf.yaml --config jobs/configs/compare/fedgan.yaml \\
            --seeds 0-2 --out jobs/compare-array.sbatch     # 6 runs: huscf seeds 0-2, fedgan seeds 0-2
        huscf-mpi slurm --resume results/scenario6-1234.h5.partial --time 2-00:00:00 --out resume.sbatch
        sbatch jobs/scenario6.sbatch        # from the project directory
    """
    from .slurm import render_resume, render_sbatch

    if resume is not None:  # a stopped run brings its own config, rank count and single result file
        for flag, value in (("--config", config_paths), ("--array", array), ("--seeds", seeds)):
            if value:
                raise _Fail(f"{flag}: --resume continues one stopped run with its own config and seed; "
                            f"drop {flag}, or render a new run without --resume")
    elif not config_paths:
        raise _Fail("--config: give the run's config (repeat it with --seeds for several), or --resume PATH "
                    "to continue a stopped run")
    # The header records how to re-render the script (argv is not ours when called from tests).
    words = ["huscf-mpi", "slurm"] + [w for path in config_paths for w in ("--config", path)]
    words += ["--resume", resume] if resume is not None else []
    for flag, value in (("--ntasks", ntasks), ("--time", time_limit), ("--signal-grace", signal_grace),
                        ("--array", array), ("--seeds", seeds),
                        ("--launcher", launcher), ("--partition", partition), ("--job-name", job_name),
                        ("--nodes", nodes), ("--mem-per-cpu", mem_per_cpu)):
        if value is not None:
            words += [flag, str(value)]
    words += ["--overcommit"] if overcommit else []
    words += ["--server-node"] if server_node else []
    words += ["--server-cpus", str(server_cpus)] if server_cpus is not None else []
    words += ["--out", out] if out else []
    words += ["--", *train_args] if train_args else []
    common = dict(ntasks=ntasks, time=time_limit, partition=partition, job_name=job_name, launcher=launcher,
                  nodes=nodes, overcommit=overcommit, mem_per_cpu=mem_per_cpu, server_node=server_node,
                  server_cpus=server_cpus, train_args=list(train_args), signal_grace=signal_grace,
                  command=" ".join(shlex.quote(str(w)) for w in words), script_path=out)
    try:
        if resume is not None:
            text = render_resume(resume, **common)
        else:
            text = render_sbatch(list(config_paths), array=array, seeds=seeds, **common)
    except ValueError as e:
        raise _Fail(str(e)) from None
    _emit(text, out)
