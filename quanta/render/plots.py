"""One visual language for every plot quanta draws for people: the same roles, colours, fonts
and sizes in every medium, rendered as self-contained SVG text (no fonts or files to fetch).

Roles: ``reference`` (the unquantized original), ``plain`` (round to nearest, no tricks),
``peer`` (another tool), ``quanta`` (quanta's best method) and ``quanta-alt`` (its other
methods). Functions return SVG strings for embedding in a page, or, given ``png=PATH``, write a
PNG there (the CLI's ``--plot`` files) and return the path.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROLE_STYLE: dict[str, dict[str, Any]] = {
    "reference": {"color": "#222222", "ls": "--", "marker": ""},
    "plain": {"color": "#9a9a9a", "ls": "-", "marker": "s"},
    "peer": {"color": "#e07b39", "ls": "-", "marker": "^"},
    "quanta": {"color": "#2a6fdb", "ls": "-", "marker": "o"},
    "quanta-alt": {"color": "#16a085", "ls": "-", "marker": "D"},
}


@dataclass(frozen=True)
class Series:
    """One curve: ``label``, points ``xs``/``ys`` and a role (see :data:`ROLE_STYLE`)."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    role: str = "quanta"


def _figure(size: tuple[float, float] = (6.4, 3.8)) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"font.size": 9, "svg.fonttype": "path", "axes.spines.top": False, "axes.spines.right": False}
    )
    return plt.subplots(figsize=size, dpi=100)


def to_svg(fig: Any) -> str:
    """The figure as SVG text (closed afterwards)."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _finish(fig: Any, png: Path | str | None) -> Any:
    """SVG text, or with ``png`` the figure written there as a PNG (110 dpi) and its path."""
    if png is None:
        return to_svg(fig)
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    return Path(png)


def rd_plot(
    series: Sequence[Series],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    logy: bool = False,
    invert_x: bool = False,
    png: Path | str | None = None,
) -> Any:
    """A rate–distortion plot: one line per series, styled by its role."""
    fig, ax = _figure()
    for s in series:
        st = ROLE_STYLE[s.role]
        ax.plot(
            list(s.xs),
            list(s.ys),
            color=st["color"],
            ls=st["ls"],
            marker=st["marker"],
            ms=4,
            lw=1.6 if s.role == "quanta" else 1.1,
            label=s.label,
        )
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if invert_x:
        ax.invert_xaxis()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, frameon=False)
    return _finish(fig, png)


def spectrum_plot(curves: Sequence[Series], threshold: Series, *, title: str, rate_hz: float,
                  ylabel: str = "dB re full scale² per Hz", fit_threshold: bool = False,
                  png: Path | str | None = None) -> Any:
    """Noise spectra (log frequency) against a threshold's shape (hearing, or masking); the
    vertical range fits the spectra, and the threshold too with ``fit_threshold``."""
    fig, ax = _figure((6.4, 3.6))
    for s in curves:
        st = ROLE_STYLE[s.role]
        ax.semilogx(list(s.xs), list(s.ys), color=st["color"], lw=0.9, label=s.label)
    ax.semilogx(
        list(threshold.xs),
        list(threshold.ys),
        color=ROLE_STYLE["reference"]["color"],
        ls="--",
        lw=1.0,
        label=threshold.label,
    )
    ax.set_xlim(20, rate_hz / 2)
    fitted = [*curves, threshold] if fit_threshold else list(curves)
    ys = np.concatenate([np.asarray(s.ys, dtype=float) for s in fitted])
    lo, hi = np.percentile(ys[np.isfinite(ys)], [1, 99.5])
    ax.set_ylim(lo - 10, hi + 10)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    return _finish(fig, png)


def heat_map(grid: Any, *, rows: Sequence[str], xlabel: str, title: str, label: str,
             png: Path | str | None = None) -> Any:
    """A matrix of values (rows × columns) as a colour map with a scale bar."""
    fig, ax = _figure((max(6.0, 0.22 * grid.shape[1] + 2.5), 0.42 * len(rows) + 1.6))
    im = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label=label)
    return _finish(fig, png)
