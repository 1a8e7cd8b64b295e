"""``quanta tour``: the universal trade-off in every medium, measured, as one page.

Each registered medium may keep a ``tour(*, quick, progress, **settings) -> TourSection`` in its
contract module; :func:`run_tour` calls them in registry order and writes ``index.html`` (one
self-contained page: inline SVG plots, embedded audio and PNG crops, no network) and
``results.json`` (every number on the page, unrounded) into a folder.
"""

from __future__ import annotations

import base64
import html
import importlib
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from quanta.media import MEDIA
from quanta.progress import Progress
from quanta.reports import dumps


@dataclass
class Table:
    """A table for the page: ``rows`` of cells already formatted (see :func:`num`)."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass
class Player:
    """An audio excerpt for the page: a label and WAV bytes."""

    label: str
    wav: bytes


@dataclass
class ImageRow:
    """Crops shown side by side: a caption and ``(label, PNG bytes)`` per crop."""

    caption: str
    crops: Sequence[tuple[str, bytes]]


@dataclass
class SummaryRow:
    """One line of the cross-media table: what precision was given up, what quality was kept."""

    medium: str
    given_up: str
    kept: str


@dataclass
class TourSection:
    """One medium's part of the tour: figures (caption, SVG), tables, players, image crops,
    summary rows, and ``data`` holding every number shown (for results.json)."""

    medium: str
    title: str
    intro: str
    figures: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    players: list[Player] = field(default_factory=list)
    images: list[ImageRow] = field(default_factory=list)
    summary: list[SummaryRow] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    seconds: float = 0.0


def num(value: float | int | None, digits: int = 2) -> str:
    """A number as the page shows it (``digits`` decimals; ``—`` for none)."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def tour_media(skip: Sequence[str] = ()) -> list[str]:
    """The registered media whose contract module has a tour, in registry order."""
    return [
        n for n, m in MEDIA.items() if n not in skip and hasattr(importlib.import_module(m.contract), "tour")
    ]


def run_tour(
    out: Path,
    *,
    quick: bool = True,
    skip: Sequence[str] = (),
    settings: dict[str, dict] | None = None,
    progress_for: Callable[[str], Progress | None] | None = None,
) -> dict:
    """Measure every medium's tour and write ``out/index.html`` and ``out/results.json`` (``out``
    is an existing, empty folder). Returns the results."""
    sections, t0 = [], time.perf_counter()
    for name in tour_media(skip):
        mod = importlib.import_module(MEDIA[name].contract)
        t1 = time.perf_counter()
        sec = mod.tour(
            quick=quick,
            progress=progress_for(name) if progress_for else None,
            **(settings or {}).get(name, {}),
        )
        sec.seconds = time.perf_counter() - t1
        sections.append(sec)
    results = {
        "quanta_tour": True,
        "quick": quick,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}",
        "seconds": time.perf_counter() - t0,
        "summary": [s.__dict__ for sec in sections for s in sec.summary],
        "media": {sec.medium: {"title": sec.title, "seconds": sec.seconds, **sec.data} for sec in sections},
    }
    (out / "results.json").write_text(dumps(results))
    (out / "index.html").write_text(render(sections, results))
    return results


def _cores() -> int:
    from quanta.threads import cpus

    return cpus()


def owns(path: Path) -> bool:
    """Whether ``path`` is a tour folder (quanta wrote it: its results.json says so)."""
    import json

    from quanta.outputs import check_only_ours

    try:
        ours = bool(json.loads((path / "results.json").read_text()).get("quanta_tour"))
    except (OSError, ValueError, AttributeError):
        return False
    if ours:
        check_only_ours(path, ("results.json", "index.html"))
    return ours


# ------------------------------------------------------------------------------------- the page

def _asset(name: str) -> str:
    """The page's style sheet or script, shipped beside this module."""
    from importlib.resources import files

    return files("quanta.render").joinpath(name).read_text()


def _esc(text: str) -> str:
    return html.escape(str(text))


def _table(t: Table, cls: str = "") -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>" for r in t.rows)
    title = f"<h3>{_esc(t.title)}</h3>" if t.title else ""
    return f'{title}<table class="{cls}"><tr>{head}</tr>{body}</table>'


def _section(sec: TourSection) -> str:
    parts = [f'<section id="{_esc(sec.medium)}"><h2>{_esc(sec.title)}</h2><p>{_esc(sec.intro)}</p>']
    for caption, svg in sec.figures:
        parts.append(f"<figure>{svg}<figcaption>{_esc(caption)}</figcaption></figure>")
    parts += [_table(t) for t in sec.tables]
    if sec.players:
        parts.append("<h3>Listen</h3><div class='players'>")
        for p in sec.players:
            data = base64.b64encode(p.wav).decode()
            parts.append(
                f"<div>{_esc(p.label)}<audio controls preload='metadata' data-label='{_esc(p.label)}' "
                f"src='data:audio/wav;base64,{data}'></audio></div>"
            )
        parts.append("</div>")
    for row in sec.images:
        parts.append(f"<h3>{_esc(row.caption)}</h3><div class='crops'>")
        for label, png in row.crops:
            data = base64.b64encode(png).decode()
            parts.append(
                f"<figure><img alt='{_esc(label)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{_esc(label)}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


def render(sections: Sequence[TourSection], results: dict) -> str:
    """The page: the cross-media summary first, then each medium's section."""
    summary = Table(
        "Precision given up → quality kept",
        ["medium", "precision given up", "quality kept"],
        [[s.medium, s.given_up, s.kept] for sec in sections for s in sec.summary],
    )
    mode = "quick tour" if results["quick"] else "full tour"
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>quanta tour</title>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<style>{_asset('tour.css')}</style>"
        f"<script>{_asset('tour.js')}</script></head><body><main><h1>What quantization costs and saves</h1>"
        f"<p class='meta'>quanta {mode}, {_esc(results['date'])}, {_esc(results['machine'])}; every "
        f"number measured in this run (results.json beside this page holds them unrounded).</p>"
        + _table(summary, "summary")
        + "".join(_section(s) for s in sections)
        + "<pre id='selfcheck' hidden></pre></main></body></html>"
    )
