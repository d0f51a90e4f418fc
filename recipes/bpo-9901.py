# Standalone repro, run by many CPython versions (2.7 syntax where a hunt spans 2.7):
# ruff: noqa: TID251, SIM105
"""bpo-9901: the new GIL (3.2 dev) is destroyed under threads still using it.

Py_Finalize() called destroy_gil(), i.e. pthread_mutex_destroy/
pthread_cond_destroy on the GIL's mutex and condition variable, while daemon
threads were still blocked in take_gil() on them.  Destroying a mutex another
thread holds fails (EBUSY), and CPython aborts with
"Fatal Python error: pthread_mutex_destroy(gil_mutex) failed" (the symptom
seen in test_threading.test_finalize_with_trace).  With newer glibc,
pthread_cond_destroy() may instead block on the waiters: a hang.

Each child starts daemon threads that spin in pure Python, so at exit they
are all queued in take_gil(), waking every switch interval to re-lock the
GIL mutex; the main thread installs a trace function (as the original test
did) and exits.  The race is narrow, so CHILDREN interpreters run per call;
the first failing child's output and signal become this process's own, and
a hung child hangs this script (reported as a hang by the tool's timeout).

Common subset of Python 2.6+ and 3.x syntax.
"""

import os
import signal
import subprocess
import sys

CHILDREN = 8

CHILD = r"""
import sys
import threading

def spin():
    x = 0
    while True:
        x += 1

for _ in range(4):
    t = threading.Thread(target=spin)
    t.daemon = True
    t.start()

def func(frame, event, arg):
    threading.current_thread()
    return func

sys.settrace(func)
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
