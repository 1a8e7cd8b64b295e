"""``quanta audio`` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Audio quantization commands.", no_args_is_help=True)
