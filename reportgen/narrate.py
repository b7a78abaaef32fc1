"""Choose the narrative drafter for a build: deterministic templates, or an LLM (filled in by the LLM issue)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def make_narrator(args: argparse.Namespace) -> tuple[Any, Callable[[], None]]:
    """Return (narrator or None, cleanup)."""
    return None, lambda: None
