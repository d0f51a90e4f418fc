"""What a hunt tells the person waiting for it; output/progress.py draws it."""

from __future__ import annotations

from typing import Protocol

from finbisect.models import Commit, Step

__all__ = ["Progress"]


class Progress(Protocol):
    def begin_step(self, *, number: int, total: int, remaining: int, commit: Commit) -> None: ...
    def activity(self, text: str) -> None: ...
    def end_step(self, step: Step) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...
