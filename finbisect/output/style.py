"""Small shared pieces of the terminal look: verdict colours, the clock, when to be fancy."""

from __future__ import annotations

import os
from typing import IO

from finbisect.models import Verdict

__all__ = ["VERDICT_STYLE", "clock", "fancy"]

VERDICT_STYLE = {Verdict.GOOD: "green", Verdict.BAD: "red", Verdict.SKIP: "yellow"}


def fancy(stream: IO[str]) -> bool:
    """Rich output: a terminal, and the user did not ask for plain text."""
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"
