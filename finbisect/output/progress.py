"""Progress on stderr while a hunt runs: a live line on a terminal, plain lines when piped."""

from __future__ import annotations

import sys
import time
from typing import IO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from finbisect.hunt.progress import Progress
from finbisect.models import Commit, Step
from finbisect.output.style import VERDICT_STYLE, clock, fancy

__all__ = ["make_progress"]


def _eta(seconds: float | None, separator: str) -> str:
    """'about 12 min left' from the costs measured so far; nothing before the first visit."""
    if seconds is None:
        return ""
    return f"{separator}about {max(1, round(seconds / 60))} min to go"


class _PlainProgress:
    """One line per change of activity on stderr: readable in CI logs."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.prefix = ""

    def _say(self, text: str) -> None:
        elapsed = clock(time.monotonic() - self.started)
        print(f"[{elapsed}] {self.prefix}{text}", file=self.stream, flush=True)

    def begin_step(
        self, *, number: int, total: int, remaining: int, commit: Commit, eta: float | None = None
    ) -> None:
        self.prefix = (
            f"step {number} of about {total} ({remaining} revisions left{_eta(eta, ', ')}) "
            f"{commit.short}: "
        )

    def activity(self, text: str) -> None:
        if not text.startswith("run ") or text.startswith("run 1 "):
            self._say(text)

    def end_step(self, step: Step) -> None:
        self._say(f"{step.verdict.value} — {step.reason}")
        self.prefix = ""

    def note(self, text: str) -> None:
        self._say(text)

    def close(self) -> None:
        pass


class _LiveProgress:
    """A live status line on a terminal, with finished steps printed above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self.step_text = ""
        self.what = "starting"
        self.live = Live(_Renderable(self), console=console, refresh_per_second=4, transient=True)
        self.live.start()

    def line(self) -> Text:
        elapsed = clock(time.monotonic() - self.started)
        return Text.assemble(
            ("⏳ ", ""), (self.step_text, "bold"), (self.what, "cyan"), f"  {elapsed}"
        )

    def begin_step(
        self, *, number: int, total: int, remaining: int, commit: Commit, eta: float | None = None
    ) -> None:
        self.step_text = (
            f"step {number} of ~{total} · {remaining} left{_eta(eta, ' · ')} · {commit.short} · "
        )

    def activity(self, text: str) -> None:
        self.what = text

    def end_step(self, step: Step) -> None:
        style = VERDICT_STYLE[step.verdict]
        self.console.print(
            Text.assemble(
                (f"{step.commit.short} ", "bold"),
                (f"{step.verdict.value:<4}", style),
                f" {step.reason}",
            )
        )
        self.step_text, self.what = "", "choosing the next revision"

    def note(self, text: str) -> None:
        self.console.print(Text(text, style="bold"))

    def close(self) -> None:
        self.live.stop()


class _Renderable:
    def __init__(self, owner: _LiveProgress) -> None:
        self.owner = owner

    def __rich__(self) -> Text:
        return self.owner.line()


def make_progress(stream: IO[str] | None = None) -> Progress:
    stream = stream or sys.stderr
    if fancy(stream):
        return _LiveProgress(Console(file=stream))
    return _PlainProgress(stream)
