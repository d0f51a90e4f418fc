"""proc.run and a Ctrl-C that arrives while subprocess.Popen() is still starting the child.

Popen forks, then waits for the exec; a KeyboardInterrupt raised in that wait
propagates out of Popen, so run() never gets the child and never kills it. With
a hanging repro this leaves a hung interpreter group running after the hunt
has exited (seen in test_an_interrupted_hunt_resumes_where_it_stopped).
capture and run both hold interrupts back (runs.interrupts.DeferredInterrupts).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from finbisect.runs import proc
from tests.unit.test_proc_capture import FORKER, _alive, _pids


def test_run_kills_a_child_whose_popen_was_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids_file = tmp_path / "pids"
    script = tmp_path / "forker.py"
    script.write_text(FORKER)
    real_popen = subprocess.Popen
    started: list[subprocess.Popen[bytes]] = []

    def interrupted_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        child = real_popen(*args, **kwargs)
        started.append(child)
        _pids(pids_file, 3)
        signal.raise_signal(signal.SIGINT)  # Ctrl-C, before Popen has returned
        return child

    monkeypatch.setattr(subprocess, "Popen", interrupted_popen)
    with pytest.raises(KeyboardInterrupt):
        proc.run(
            [sys.executable, str(script), str(pids_file)],
            cwd=tmp_path,
            timeout=600,
            log_path=tmp_path / "log",
            grace=5,
        )
    alive = [pid for pid in _pids(pids_file, 3) if _alive(pid)]
    for pid in alive:  # this test's own clean-up, so that only the assertion fails
        os.kill(pid, signal.SIGKILL)
    for child in started:
        child.wait()  # reap the leader whose Popen run() never got
    assert not alive
