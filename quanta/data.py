"""Where the shared test and benchmark data lives: ``$QUANTA_DATA``, else ``../shared/data``
beside the repository (see that folder's README)."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The shared data folder (it may not exist; callers say what they miss)."""
    env = os.environ.get("QUANTA_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
