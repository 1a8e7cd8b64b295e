"""``quanta tour``: run every medium's measured sweep and write the page."""

from __future__ import annotations

from pathlib import Path

import typer

from quanta.cli.common import console, print_json, print_table


def tour(
    out: Path = typer.Option(Path("quanta-tour"), "--out", "--output", "-o", help="Folder to write "
                             "index.html and results.json into."),
    quick: bool = typer.Option(False, "--quick", help="Fewer points and calibration-free model methods "
                               "(about 3 minutes on 2 cores; the full tour about 15)."),
    open_page: bool = typer.Option(False, "--open", help="Open the page in a browser when done."),
    skip: str = typer.Option("", help="Comma-separated media to leave out (e.g. model)."),
    force: bool = typer.Option(False, "--force", help="Replace a tour folder quanta wrote."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """What quantization costs and saves in sound, pictures and a language model: one page."""
    from quanta.errors import ConfigError
    from quanta.media import MEDIA
    from quanta.outputs import atomic_output, check_output
    from quanta.render.tables import phase_bars
    from quanta.render.tour import owns, run_tour, tour_media

    skipped = tuple(s.strip().lower() for s in skip.split(",") if s.strip())
    unknown = [s for s in skipped if s not in MEDIA]
    if unknown:
        raise ConfigError(f"--skip {','.join(unknown)}: no such medium (choose from {', '.join(MEDIA)})")
    if out.suffix.lower() in (".html", ".htm", ".json"):
        raise ConfigError(f"--out {out}: the tour writes a folder (index.html and results.json in it); "
                          "name it without an extension")
    names = tour_media(skipped)
    if not names:
        raise ConfigError("--skip leaves no medium to tour")
    check_output(out, force=force, folder=True, owns=owns)
    with phase_bars(names, enabled=not json_out) as bar, atomic_output(out, folder=True) as tmp:
        results = run_tour(tmp, quick=quick, skip=skipped, progress_for=bar)
    page = (out / "index.html").resolve()
    if json_out:
        print_json(results)
    else:
        print_table("precision given up → quality kept", ["medium", "precision given up", "quality kept"],
                    [[r["medium"], r["given_up"], r["kept"]] for r in results["summary"]], left=(0, 1, 2))
        console.print(f"page: {page}  ({results['seconds']:.0f} s)")
    if open_page:
        import webbrowser

        try:
            opened = webbrowser.open(page.as_uri())
        except webbrowser.Error:
            opened = False
        if not opened:
            console.print(f"could not open a browser; the page is at {page}")
