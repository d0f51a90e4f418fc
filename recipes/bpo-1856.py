# Standalone repro, run by many CPython versions (2.7 syntax where a hunt spans 2.7):
# ruff: noqa: TID251, SIM105
"""bpo-1856: daemon threads crash (or hang) the interpreter at shutdown.

Gregory P. Smith's reproducer (kept as CPython's test_threading
test_4_daemon_threads): 40 daemon threads loop doing I/O and sleeping a
random fraction of a millisecond, then the main thread exits.  On an
affected interpreter a daemon thread that wakes up while Py_Finalize tears
down its thread state crashes the process (pydebug: freed memory is
poisoned, so the crash is far more likely) or the exit hangs.

The race is rare per process, so this script runs the scenario in CHILDREN
fresh interpreters (sys.executable).  The first child that fails is
reported as this process's own outcome: its output is relayed and, if it
died from a signal, this process re-raises that signal.  A hung child hangs
this script, which the bisect tool's timeout reports as a hang.

Written in the common subset of Python 2.6+ and 3.x (the hunts span 2.7).
"""

import os
import signal
import subprocess
import sys

CHILDREN = 8

CHILD = r"""
import os
import random
import sys
import threading
import time

thread_has_run = set()

def random_io():
    while True:
        in_f = open(os.__file__, 'rb')
        stuff = in_f.read(200)
        null_f = open(os.devnull, 'wb')
        null_f.write(stuff)
        time.sleep(random.random() / 1995)
        null_f.close()
        in_f.close()
        thread_has_run.add(threading.current_thread())

def main():
    count = 0
    for _ in range(40):
        new_thread = threading.Thread(target=random_io)
        new_thread.daemon = True
        new_thread.start()
        count += 1
    while len(thread_has_run) < count:
        time.sleep(0.001)
    sys.exit(0)

main()
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
