"""PNG plots with matplotlib's Agg backend (no display needed). Each function writes one file."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

COLOURS = {"random": "#9e9e9e", "dotprod": "#8c564b", "clustering": "#9467bd", "packing": "#2ca02c",
           "bestfit": "#1f77b4", "fgd": "#d62728", "fgd-plus": "#111111", "binpack": "#ff7f0e", "spread": "#17becf"}


_CYCLE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf", "#111111", "#9e9e9e")


def colours(labels) -> dict[str, str]:
    """One colour per label of one plot: a policy's own ("fgd", "fgd p95", "fgd @ cluster") where no
    earlier label took it, else the first unused of a fixed cycle, so no two series look alike."""
    taken: dict[str, str] = {}
    for label in labels:
        own = COLOURS.get(label.split(" ")[0])
        taken[label] = own if own is not None and own not in taken.values() else next(
            (c for c in (*_CYCLE, *COLOURS.values()) if c not in taken.values()), "#000000")
    return taken


def band_plot(path: Path, x: np.ndarray, runs: Mapping[str, np.ndarray], *, ylabel: str, title: str,
              published: Mapping[str, np.ndarray] | None = None, xlim: tuple[float, float] | None = None,
              xlabel: str = "arrived GPU request (% of capacity)", centre: str = "median",
              markers: Sequence[tuple[float, str]] = ()) -> Path:
    """The median (or `centre="mean"`) over runs (rows) with the 25-75 % band, per label; published medians
    dashed; `markers` (x, what) as labelled vertical lines (a GPU failure, the last arrival)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    visible = np.ones(len(x), bool) if xlim is None else (x >= xlim[0]) & (x <= xlim[1])
    top = 0.0
    palette = colours(runs)
    for label, values in runs.items():
        values = np.atleast_2d(values)
        c = palette[label]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns (no sample near that load)
            high = np.nanpercentile(values, 75, 0)
            middle = np.nanmean(values, 0) if centre == "mean" else np.nanmedian(values, 0)
            ax.plot(x, middle, color=c, label=label, lw=1.6)
            ax.fill_between(x, np.nanpercentile(values, 25, 0), high, color=c, alpha=0.2)
            top = max(top, float(np.nanmax(high[visible], initial=0.0)))
        if published is not None and label in published:
            ax.plot(x, published[label], color=c, ls="--", lw=1.0, alpha=0.9)
            top = max(top, float(np.nanmax(published[label][visible], initial=0.0)))
    if published:
        ax.plot([], [], color="k", ls="--", lw=1.0, label="published (median)")
    mark(ax, markers)
    _finish(ax, title, ylabel, xlabel, xlim)
    if top > 0:
        ax.set_ylim(0, top * 1.08)
    return _save(fig, path)


def line_plot(path: Path, series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, xlabel: str,
              ylabel: str, title: str, step: bool = False, levels: Mapping[str, float] | None = None,
              markers: Sequence[tuple[float, str]] = ()) -> Path:
    """Lines (or steps) per label; `levels` adds a dashed horizontal line in the label's colour;
    `markers` as in `band_plot`."""
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    palette = colours(series)
    for label, (x, y) in series.items():
        c = palette[label]
        (ax.step if step else ax.plot)(x, y, color=c, label=label, lw=1.4, **({"where": "post"} if step else {}))
        if levels and label in levels:
            ax.axhline(levels[label], color=c, ls="--", lw=0.9, alpha=0.8)
    mark(ax, markers)
    _finish(ax, title, ylabel, xlabel, None)
    return _save(fig, path)


def bar_plot(path: Path, categories: Sequence[str], series: Mapping[str, Sequence[float]], *, ylabel: str,
             title: str) -> Path:
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 0.8 * len(categories) * max(1, len(series)))), 4.0))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(categories))
    palette = colours(series)
    for i, (label, values) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=label, color=palette[label])
    ax.set_xticks(x, categories, rotation=30 if len(categories) > 6 else 0, ha="right" if len(categories) > 6 else "center")
    _finish(ax, title, ylabel, None, None)
    return _save(fig, path)


MARKER_STYLES = ((":", "0.25"), ("-.", "0.45"), ((0, (1, 3)), "0.6"))
"""Grey line styles for markers, one per kind of event (in order of first appearance)."""


def mark(ax, markers: Sequence[tuple[float, str]]) -> None:
    """Vertical lines at each marker's x; one legend entry per kind of event (the text before ':')."""
    styles: dict[str, tuple] = {}
    for x, what in markers:
        kind = what.split(":", 1)[0]
        first = kind not in styles
        style = styles.setdefault(kind, MARKER_STYLES[len(styles) % len(MARKER_STYLES)])
        ax.axvline(x, ls=style[0], color=style[1], lw=1.1, label=kind if first else None)


def _finish(ax, title: str, ylabel: str, xlabel: str | None, xlim) -> None:
    ax.set_title(title, fontsize=11)
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    if xlim:
        ax.set_xlim(*xlim)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
