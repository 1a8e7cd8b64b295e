"""``quanta image`` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Image quantization commands.", no_args_is_help=True)
