# Standalone repro (Python 3 only: the bug and its fix are 3.9+).
"""gh-96387: the main thread hangs in drop_gil() at exit (FORCE_SWITCHING).

A daemon thread waiting in take_gil() times out and sets the GIL drop
request.  If Py_Finalize() has started when it next wakes, take_gil() makes
it exit (PyThread_exit_thread) *without resetting the drop request*.  The
next time the finalizing main thread runs Python code it honours the stale
request: drop_gil() with FORCE_SWITCHING waits on switch_cond for another
thread to take the GIL, and none ever will - the process hangs at exit.
Reported on 3.9.2 with a 1/hundreds rate; fixed by 04f4977f (take_gil()
resets the drop request before exiting).

This script widens every window instead of retrying:
  * a 1 ms switch interval and four spinning daemon threads;
  * an atexit callback that is a builtin (no Python frame, no eval-breaker
    check) holding the GIL long enough for the daemons to set the request
    just before finalization starts;
  * a large live heap, so Py_Finalize()'s garbage collection runs long in C
    while every daemon wakes, sees finalization and exits;
  * a module global whose __del__ then runs a Python loop, honouring the
    stale request.
An affected interpreter hangs (reported by the tool's timeout); a healthy
one exits 0 in well under a second.
"""

import atexit
import sys
import threading

sys.setswitchinterval(0.001)


def spin():
    x = 0
    while True:
        x += 1


for _ in range(4):
    threading.Thread(target=spin, daemon=True).start()


class RunsPythonAtExit:
    def __del__(self):
        total = 0
        for i in range(20000):
            total += i


heap = [[i] for i in range(300000)]
marker = RunsPythonAtExit()

# Holds the GIL in C for a while (no eval-breaker check) just before
# finalization: the waiting daemons time out and set the drop request.
atexit.register(sum, range(3000000))
