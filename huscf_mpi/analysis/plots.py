"""Figures from result files: PNGs written with matplotlib's Agg backend (no display needed).

:func:`plot_all` groups runs like the tables (same configuration up to seed) and writes:

- ``generation_score.png``: final-so-far generation score per round, one panel per domain,
  one line per group (mean over seeds) with a band from the lowest to the highest seed.
- ``generation_score_time.png``: the same scores against training wall time (cumulative
  ``rounds/wall_seconds``, evaluation excluded), one line per run: time to quality, which
  compares the synchronous and asynchronous modes (issue 10).
- ``losses.png``: discriminator and generator loss per round (mean over clients), same style.
- ``time_per_rank.png``: per rank, seconds computing, communicating (in MPI calls) and idle
  (round wall time minus both, shown only where it is at least 1 % of the wall time), summed
  over rounds and averaged over seeds; one panel per group.
- ``cut_vectors.png``: the cut vector (g_head, g_tail, d_head, d_tail) per device profile when
  the file has ``cuts/profiles``, else per client; one panel per group (its first run).
- ``clusters.png``: cluster label of every client in every round (clients × rounds).
- ``samples.png``: the last round's sample grid per domain (columns) and group (rows).
- ``spectrograms.png``: audio domains (FSDD) only: the last round's grid as spectrograms, one
  row per class, labelled; and, for every run with ``/audio/<domain>``, its Griffin-Lim clips
  as 16-bit WAV files ``audio/<run file stem>/<domain>/<class>-<j>.wav``.

A figure whose data no file has is skipped (and named in the returned notes). Lines, legends
and panel titles carry the group labels of :func:`.grouping.label_groups`, as table rows do:
with several strategies, their readable names (HuSCF-GAN, FedGAN, MD-GAN, Centralized), plus the
run name where runs of one strategy differ by name (ablations).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: cluster nodes and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.colors  # noqa: E402,F401
import matplotlib.ticker  # noqa: E402,F401
import numpy as np  # noqa: E402

from ..data import audio, get_domain  # noqa: E402
from ..data.errors import DataError  # noqa: E402
from ..results import ResultFile, schema  # noqa: E402
from .grouping import Group, group_runs, label_groups  # noqa: E402
from .runs import load_runs  # noqa: E402

MAX_PANELS = 8  # per figure (a method comparison has 7 rows); more groups are cut, and noted, to keep figures legible
DPI = 100
COMPONENTS = ("g_head", "g_tail", "d_head", "d_tail")


def _color(i: int):
    return plt.get_cmap("tab10")(i % 10)


def _open(run) -> ResultFile:
    return ResultFile(run.path, allow_incomplete=True)


def _per_round(groups: list[Group], extract) -> list[tuple[Group, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per group: rounds, mean, low, high of ``extract(rf) -> (rounds, values)`` over its runs."""
    out = []
    for g in groups:
        series = []
        for run in g.runs:
            with _open(run) as rf:
                got = extract(rf)
            if got is not None:
                r, v = got
                keep = np.isfinite(v)
                series.append(dict(zip(np.asarray(r)[keep].tolist(), np.asarray(v, dtype=float)[keep].tolist())))
        if not series:
            continue
        rounds = np.array(sorted(set().union(*series)))
        table = np.array([[s.get(r, np.nan) for r in rounds] for s in series])
        out.append((g, rounds, np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0)))
    return out


def _line_band(ax, i, label, rounds, mean, low, high) -> None:
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.plot(rounds, mean, marker="o", ms=3, color=_color(i), label=label)
    if np.any(high > low):
        ax.fill_between(rounds, low, high, color=_color(i), alpha=0.2, linewidth=0)


def _round_index(rf: ResultFile, n: int) -> np.ndarray:
    return np.asarray(rf.array("rounds/round"), dtype=float)[:n] if "rounds/round" in rf else np.arange(1, n + 1)


def _domain_panels(groups: list[Group]):
    """``(domains, fig, axes row)``: one panel per domain of the runs; None without domains."""
    domains = list(dict.fromkeys(d for g in groups for r in g.runs for d in r.domains))
    if not domains:
        return None
    fig, axes = plt.subplots(1, len(domains), figsize=(4.2 * len(domains), 3.4), squeeze=False)
    return domains, fig, axes[0]


def _scores(rf: ResultFile, domain: str) -> np.ndarray | None:
    """``rounds/generation_score`` of ``domain`` (R,), float; None if the file has none."""
    if "rounds/generation_score" not in rf or domain not in rf.domains:
        return None
    scores = np.asarray(rf.array("rounds/generation_score"), dtype=float)
    return scores[:, rf.domains.index(domain)] if scores.ndim == 2 else scores


def _generation_score(groups: list[Group], path: Path) -> bool:
    panels = _domain_panels(groups)
    if panels is None:
        return False
    domains, fig, axes = panels
    drawn = False
    for ax, d in zip(axes, domains):
        def extract(rf, d=d):
            col = _scores(rf, d)
            return None if col is None else (_round_index(rf, len(col)), col)

        for i, (g, r, mean, low, high) in enumerate(_per_round(groups, extract)):
            _line_band(ax, groups.index(g), g.label, r, mean, low, high)
            drawn = True
        ax.set(title=d, xlabel="round", ylabel="generation score")
        ax.grid(alpha=0.3)
    return _finish_with_legend(fig, axes[0], path, drawn)


def _generation_score_time(groups: list[Group], path: Path) -> bool:
    panels = _domain_panels(groups)
    if panels is None:
        return False
    domains, fig, axes = panels
    drawn = False
    for ax, d in zip(axes, domains):
        for i, g in enumerate(groups):
            for j, run in enumerate(g.runs):
                with _open(run) as rf:
                    col = _scores(rf, d)
                    if col is None or "rounds/wall_seconds" not in rf:
                        continue
                    t = np.cumsum(np.asarray(rf.array("rounds/wall_seconds"), dtype=float))[:len(col)]
                keep = np.isfinite(col[:len(t)])
                ax.plot(t[keep], col[:len(t)][keep], marker="o", ms=3, color=_color(i),
                        label=g.label if j == 0 else None)
                drawn = True
        ax.set(title=d, xlabel="training wall time (s)", ylabel="generation score")
        ax.grid(alpha=0.3)
    return _finish_with_legend(fig, axes[0], path, drawn)


def _finish_with_legend(fig, legend_ax, path: Path, drawn: bool) -> bool:
    """Save ``fig`` with a shared legend if anything was drawn; otherwise discard it."""
    if not drawn:
        plt.close(fig)
        return False
    _legend(fig, legend_ax)
    _save(fig, path)
    return True


def _losses(groups: list[Group], path: Path) -> bool:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), squeeze=False)
    drawn = False
    for ax, (name, title) in zip(axes[0], (("loss_d", "discriminator loss"), ("loss_g", "generator loss"))):
        def extract(rf, name=name):
            key = f"rounds/{name}"
            if key not in rf:
                return None
            arr = np.asarray(rf.array(key), dtype=float)
            arr = arr.reshape(len(arr), -1).mean(axis=1)  # mean over clients
            return _round_index(rf, len(arr)), arr

        for g, r, mean, low, high in _per_round(groups, extract):
            _line_band(ax, groups.index(g), g.label, r, mean, low, high)
            drawn = True
        ax.set(title=f"{title} (mean over clients)", xlabel="round", ylabel="BCE loss")
        ax.grid(alpha=0.3)
    return _finish_with_legend(fig, axes[0][0], path, drawn)


def _rank_times(g: Group):
    """(compute, comm, idle) per rank, summed over rounds, averaged over the group's runs; or None."""
    rows = []
    for run in g.runs:
        with _open(run) as rf:
            if "rounds/compute_seconds" not in rf or "rounds/comm_seconds" not in rf:
                continue
            comp = np.asarray(rf.array("rounds/compute_seconds"), dtype=float)
            comm = np.asarray(rf.array("rounds/comm_seconds"), dtype=float)
            n = min(len(comp), len(comm))
            comp, comm = comp[:n], comm[:n]
            idle = np.full(comp.shape[1], np.nan)
            if "rounds/wall_seconds" in rf:
                wall = np.asarray(rf.array("rounds/wall_seconds"), dtype=float)[:n]
                # Idle time only means something where each rank's busy time fits in the wall time.
                idle = np.clip(wall.sum() - comp.sum(0) - comm.sum(0), 0, None)
                wall_total = wall.sum()
            else:
                wall_total = np.nan
            rows.append((comp.sum(0), comm.sum(0), idle, wall_total))
    if not rows:
        return None
    width = min(len(r[0]) for r in rows)
    comp = np.mean([r[0][:width] for r in rows], 0)
    comm = np.mean([r[1][:width] for r in rows], 0)
    idle = np.mean([r[2][:width] for r in rows], 0)
    wall = np.mean([r[3] for r in rows])
    show_idle = bool(np.isfinite(idle).all() and np.isfinite(wall) and wall > 0 and (idle >= 0.01 * wall).any())
    return comp, comm, (idle if show_idle else None), wall


def _time_per_rank(groups: list[Group], path: Path) -> bool:
    data = [(g, t) for g in groups[:MAX_PANELS] if (t := _rank_times(g)) is not None]
    if not data:
        return False
    n_ranks = max(len(t[0]) for _, t in data)
    width = min(12.0, max(4.5, 0.35 * n_ranks + 2.5))
    # Many ranks (paper scale: 81 or 101) get one full-width panel per group, stacked.
    rows, cols = (len(data), 1) if n_ranks > 20 else (1, len(data))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 3.6 * rows), squeeze=False, sharey=True)
    axes = axes.reshape(1, -1)
    for ax, (g, (comp, comm, idle, wall)) in zip(axes[0], data):
        x = np.arange(len(comp))
        ax.bar(x, comp, color="#4c72b0", label="compute")
        ax.bar(x, comm, bottom=comp, color="#dd8452", label="communication (MPI)")
        if idle is not None:
            ax.bar(x, idle, bottom=comp + comm, color="#cccccc", label="idle")
        if np.isfinite(wall):
            ax.axhline(wall, color="k", lw=0.8, ls="--", label="wall (sum of rounds)")
        step = 1 if len(x) <= 20 else 10  # label every 10th rank at paper scale
        ax.set_xticks(x[::step], ["server" if r == 0 else str(r) for r in x[::step]], fontsize=8 if step > 1 else 10)
        ax.set(xlabel="rank")
        ax.set_title(_short(g.label), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[0][:: cols]:
        ax.set_ylabel("seconds, all rounds\n(mean over seeds)")
    _legend(fig, axes[0][0])
    _save(fig, path)
    return True


def _cut_panels(groups: list[Group]):
    panels = []
    for g in groups[:MAX_PANELS]:
        with _open(g.runs[0]) as rf:
            if schema.CUT_VECTORS not in rf:
                continue
            cuts = np.asarray(rf.array(schema.CUT_VECTORS), dtype=int)
            profiles = [str(p) for p in rf.table(schema.CUT_PROFILES)["profile"]] if schema.CUT_PROFILES in rf else None
        if profiles is not None and len(profiles) == len(cuts):
            names = list(dict.fromkeys(sorted(profiles)))
            rows, labels = [], []
            for name in names:
                vecs = [tuple(c) for c, p in zip(cuts.tolist(), profiles) if p == name]
                vec, count = Counter(vecs).most_common(1)[0]
                rows.append(vec)
                extra = f", {len(vecs) - count} other" if count < len(vecs) else ""
                labels.append(f"{name} (×{len(vecs)}{extra})")
            panels.append((g, np.array(rows), labels, "device profile"))
        else:
            panels.append((g, cuts, [f"client {i + 1}" for i in range(len(cuts))], "client"))
    return panels


def _cut_vectors(groups: list[Group], path: Path) -> bool:
    panels = _cut_panels(groups)
    if not panels:
        return False
    n_rows = max(len(p[1]) for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 1, 1.6 + 0.3 * min(n_rows, 30)),
                             squeeze=False, layout="constrained")
    vmax = max(int(p[1].max()) for p in panels)
    for ax, (g, vecs, labels, what) in zip(axes[0], panels):
        im = ax.imshow(vecs, aspect="auto", cmap="viridis", vmin=1, vmax=max(vmax, 2))
        if len(vecs) <= 40:  # annotate block indices while they stay readable
            for (i, j), v in np.ndenumerate(vecs):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                        color="white" if v < (1 + vmax) / 2 else "black")
            ax.set_yticks(range(len(labels)), labels, fontsize=8)
        else:
            ax.set_ylabel(what)
        ax.set_xticks(range(4), COMPONENTS, fontsize=8)
        ax.set_title(f"{_short(g.label, 40)}\nper {what}", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), label="block index", fraction=0.04, ticks=range(1, max(vmax, 2) + 1))
    fig.suptitle("cut vectors: last head block and first tail block of G and D", fontsize=10)
    _save(fig, path, tight=False)
    return True


def _clusters(groups: list[Group], path: Path) -> bool:
    panels = []
    for g in groups[:MAX_PANELS]:
        with _open(g.runs[0]) as rf:
            if "rounds/cluster_labels" in rf:
                labels = np.asarray(rf.array("rounds/cluster_labels"), dtype=float)
                panels.append((g, g.runs[0].seed, _round_index(rf, len(labels)), labels))
    if not panels:
        return False
    n_clients = max(p[3].shape[1] for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels) + 1, 1.8 + 0.22 * min(n_clients, 24)),
                             squeeze=False, layout="constrained")
    k = int(np.nanmax([np.nanmax(p[3]) for p in panels])) + 1
    base = plt.get_cmap("tab10" if k <= 10 else "tab20").colors  # distinct colours per cluster
    cmap = matplotlib.colors.ListedColormap([base[i % len(base)] for i in range(max(k, 2))])
    for ax, (g, seed, rounds, labels) in zip(axes[0], panels):
        im = ax.imshow(labels.T, aspect="auto", cmap=cmap, vmin=-0.5, vmax=max(k, 2) - 0.5, interpolation="nearest",
                       extent=(rounds[0] - 0.5, rounds[-1] + 0.5, labels.shape[1] + 0.5, 0.5))
        ax.set(title=f"{_short(g.label)} (seed {seed})", xlabel="round", ylabel="client")
        ax.set_xticks(rounds if len(rounds) <= 20 else rounds[:: max(1, len(rounds) // 10)])
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%d"))
        if labels.shape[1] <= 20:
            ax.set_yticks(range(1, labels.shape[1] + 1))
        ax.title.set_fontsize(9)
    fig.colorbar(im, ax=axes[0].tolist(), ticks=range(max(k, 2)), label="cluster", fraction=0.04)
    _save(fig, path, tight=False)
    return True


def _samples(groups: list[Group], path: Path) -> bool:
    domains = list(dict.fromkeys(d for g in groups for r in g.runs for d in r.domains))
    cells = {}
    for gi, g in enumerate(groups[:MAX_PANELS]):
        with _open(g.runs[0]) as rf:
            for d in domains:
                if f"samples/{d}" in rf:
                    grids = rf.samples(d)
                    if len(grids):
                        cells[(gi, d)] = grids[-1]
    if not cells:
        return False
    n_groups = min(len(groups), MAX_PANELS)
    fig, axes = plt.subplots(n_groups, len(domains), figsize=(max(2.8 * len(domains), 4.6), 3.5 * n_groups),
                             squeeze=False, layout="constrained")  # constrained: room for the suptitle
    for gi in range(n_groups):
        for di, d in enumerate(domains):
            ax = axes[gi][di]
            ax.axis("off")
            if (gi, d) in cells:
                ax.imshow(cells[(gi, d)], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(_panel_title(d, groups[gi]), fontsize=8)
    fig.suptitle("generated samples, last evaluated round (one row per class)", fontsize=9)
    _save(fig, path, tight=False)
    return True


def _audio_domains(groups: list[Group]) -> list[str]:
    out = []
    for d in dict.fromkeys(d for g in groups for r in g.runs for d in r.domains):
        try:
            if get_domain(d).modality == "audio":
                out.append(d)
        except DataError:  # a domain this installation does not know: not ours to draw
            pass
    return out


def _spectrograms(groups: list[Group], path: Path) -> bool:
    domains = _audio_domains(groups)
    cells = {}
    for gi, g in enumerate(groups[:MAX_PANELS]):
        with _open(g.runs[0]) as rf:
            for d in domains:
                if f"samples/{d}" in rf and len(grids := rf.samples(d)):
                    cells[(gi, d)] = grids[-1]
    if not cells:
        return False
    n_groups = min(len(groups), MAX_PANELS)
    fig, axes = plt.subplots(n_groups, len(domains), figsize=(4.2 * len(domains), 4.8 * n_groups),
                             squeeze=False, layout="constrained")
    for gi in range(n_groups):
        for di, d in enumerate(domains):
            ax, spec = axes[gi][di], get_domain(d)
            if (gi, d) not in cells:
                ax.axis("off")
                continue
            grid = cells[(gi, d)]
            h = spec.image_shape[1]
            im = ax.imshow(grid, cmap="magma", vmin=0, vmax=255, interpolation="nearest", aspect="auto")
            ax.set_yticks(np.arange(spec.n_classes) * h + h / 2, spec.class_names, fontsize=7)
            ax.set_ylabel("class (each row: mel bands, high at top)", fontsize=7)
            ax.set_xlabel(f"frames ({audio.DEFAULT.hop_length / audio.DEFAULT.sample_rate * 1e3:.0f} ms hop), "
                          "one clip per column block", fontsize=7)
            ax.tick_params(axis="x", labelsize=6)
            ax.set_title(_panel_title(d, groups[gi]), fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02).set_label(
                f"0 = max - {audio.DEFAULT.top_db:.0f} dB, 255 = training max", fontsize=7)
    fig.suptitle("generated log-mel spectrograms, last evaluated round", fontsize=9)
    _save(fig, path, tight=False)
    return True


def write_audio(groups: list[Group], out: Path) -> list[Path]:
    """Every run's ``/audio/<domain>`` clips as WAV files under ``out/audio/<file stem>/<domain>/``.

    File names ``<class name>-<j>.wav`` (j = 0, 1, ... within the class); 16-bit mono PCM at
    the stored ``sample_rate``. Returns the paths written.
    """
    written = []
    for g in groups:
        for run in g.runs:
            with _open(run) as rf:
                for d in run.domains:
                    if f"audio/{d}" not in rf:
                        continue
                    clips, attrs = rf.array(f"audio/{d}"), rf.attrs(f"audio/{d}")
                    names = get_domain(d).class_names
                    folder = out / "audio" / run.path.name.removesuffix(".h5").removesuffix(".partial") / d
                    folder.mkdir(parents=True, exist_ok=True)
                    seen: Counter = Counter()
                    for clip, k in zip(clips, attrs["labels"]):
                        target = folder / f"{names[k]}-{seen[k]}.wav"
                        seen[k] += 1
                        target.write_bytes(audio.wav_bytes(clip, int(attrs["sample_rate"])))
                        written.append(target)
    return written


def _panel_title(domain: str, group: Group) -> str:
    """Domain, configuration and seed on lines of their own, so long run names do not run into
    the next panel's title."""
    return f"{domain}\n{_short(group.label, 40)}\n(seed {group.runs[0].seed})"


def _short(label: str, width: int = 48) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _legend(fig, ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.06 + 0.05 * ((len(labels) - 1) // 3), 1, 1))


def _save(fig, path: Path, tight: bool = True) -> None:
    if tight and not fig.legends:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight" if not tight else None)
    plt.close(fig)
    _shrink(path)


def _shrink(path: Path) -> None:
    """Re-save as a 256-colour palette PNG: figures have few colours, and sample grids full of
    grey noise otherwise make multi-hundred-KB RGBA files."""
    try:
        from PIL import Image
    except ImportError:  # pillow comes with matplotlib; keep the RGBA file if it is missing
        return
    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


FIGURES = {
    "generation_score.png": _generation_score,
    "generation_score_time.png": _generation_score_time,
    "losses.png": _losses,
    "time_per_rank.png": _time_per_rank,
    "cut_vectors.png": _cut_vectors,
    "clusters.png": _clusters,
    "samples.png": _samples,
    "spectrograms.png": _spectrograms,
}


def plot_all(paths, out_dir: str | Path, by: list[str] | None = None,
             allow_incomplete: bool = False) -> tuple[list[Path], list[str]]:
    """Write every figure of ``FIGURES`` that the files have data for into ``out_dir``.

    Parameters
    ----------
    paths : iterable of str or Path
        Result files (refused if incomplete unless ``allow_incomplete``; one schema version).
    out_dir : str or Path
        Created if missing; existing PNGs of the same names are replaced.
    by : list of str, optional
        Config fields labelling the groups (as ``huscf-mpi tables --by``).

    Returns
    -------
    written : list of Path
    notes : list of str
        Figures skipped for lack of data, groups cut from crowded figures.
    """
    groups = group_runs(load_runs(paths, allow_incomplete))
    label_groups(groups, by)
    for g in groups:
        if g.incomplete:
            g.label += " (incomplete)"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, notes = [], []
    if len(groups) > MAX_PANELS:
        notes.append(f"{len(groups)} groups; per-group panels show the first {MAX_PANELS}")
    for name, draw in FIGURES.items():
        target = out / name
        if draw(groups, target):
            written.append(target)
        elif name != "spectrograms.png" or _audio_domains(groups):
            notes.append(f"{name}: skipped, no file has its data")
    written += write_audio(groups, out)
    return written, notes
