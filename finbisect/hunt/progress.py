"""What a hunt tells the person waiting for it; output/progress.py draws it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from finbisect.models import Commit, Step

__all__ = ["Progress", "eta_seconds"]


class Progress(Protocol):
    def begin_step(
        self,
        *,
        number: int,
        total: int,
        remaining: int,
        commit: Commit,
        eta: float | None = None,
    ) -> None: ...
    def activity(self, text: str) -> None: ...
    def end_step(self, step: Step) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


def eta_seconds(steps_left: int, visits: Sequence[Step]) -> float | None:
    """Seconds the `steps_left` visits will take at the costs measured so far: a fresh build's
    mean (reused builds cost nothing) plus a visit's mean run time. None before any visit."""
    if not visits:
        return None
    built = [v.build_seconds for v in visits if not v.cached and v.build_seconds > 0]
    build = sum(built) / len(built) if built else 0.0
    run = sum(v.run_seconds for v in visits) / len(visits)
    return steps_left * (build + run)
