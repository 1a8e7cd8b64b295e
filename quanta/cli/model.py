"""``quanta model`` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Model quantization commands.", no_args_is_help=True)
