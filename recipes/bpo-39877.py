# Standalone repro, run by many CPython versions (2.7 syntax where a hunt spans 2.7):
# ruff: noqa: TID251, SIM105
"""bpo-39877: a daemon thread dereferences its freed thread state at exit.

01b1cc12 (bpo-36710, 3.8 dev) made PyEval_RestoreThread() read
tstate->interp->runtime before checking whether the runtime is finalizing.
A daemon thread that returns from a blocking call (time.sleep() here)
after Py_Finalize() freed every thread state reads freed memory: on a
pydebug build the memory is filled with 0xDD, so the thread crashes with
SIGSEGV (first seen as random test_concurrent_futures and
test_multiprocessing_spawn core dumps on FreeBSD buildbots).  Fixed in 3.9
dev by eb4e2ae2 (check the atomic _PyRuntime.finalizing first), followed by
three more take_gil() fixes (9229eeee, 29356e03, a36adfa6).

The window is the short time between the thread states being freed and the
process exiting, so each child runs many daemon threads sleeping random
sub-millisecond to few-millisecond intervals, and CHILDREN interpreters run
per call.  The first child that fails gives this process its output and
its signal; a hung child hangs this script (the tool's timeout reports it).
Victor Stinner needed an added sleep(1) at the end of Py_RunMain() to make
it reliable; without such a patch the per-run rate is unknown.
"""

import os
import signal
import subprocess
import sys

CHILDREN = 10

CHILD = r"""
import random
import threading
import time

started = []

def sleeper():
    started.append(1)
    while True:
        time.sleep(random.random() * 0.004)

for _ in range(50):
    t = threading.Thread(target=sleeper)
    t.daemon = True
    t.start()
while len(started) < 50:
    time.sleep(0.001)
"""


def _relay(data, stream):
    getattr(stream, "buffer", stream).write(data)
    stream.flush()


def _fail_like(proc, out, err):
    _relay(out, sys.stdout)
    _relay(err, sys.stderr)
    code = proc.returncode
    if code is not None and code < 0:
        sig = -code
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (ValueError, OSError, RuntimeError):
            pass
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(code or 1)


def main():
    for _ in range(CHILDREN):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = proc.communicate()
        if proc.returncode != 0 or b"Fatal Python error" in err:
            _fail_like(proc, out, err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
