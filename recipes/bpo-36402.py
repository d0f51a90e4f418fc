# Standalone repro (Python 3 only: subinterpreters via _testcapi).
# ruff: noqa: UP031
"""bpo-36402: threading._shutdown() returns before a thread state is deleted.

threading._shutdown() joined the threads still listed in threading._active,
but a thread leaves that registry when its Python code returns, before its
C thread state is cleared and deleted.  Anything that runs in
PyThreadState_Clear() (here: a thread-local object whose __del__ sleeps)
keeps the thread state alive after _shutdown() has decided there is nothing
left to wait for, and Py_EndInterpreter() then aborts with
"Fatal Python error: Py_EndInterpreter: not the last thread".
Py_Finalize() had the same race but no check, so the repro uses a
subinterpreter, like test_threading.test_threads_join_2.

Unlike the buildbot failure (random sleeps, rare), this script waits until
the thread has left threading's registry and only then lets the
subinterpreter end, so an affected interpreter fails every time.  The fix
(468e5fec) makes _shutdown() wait for the thread-state locks of all
non-daemon threads, so a healthy interpreter waits ~0.2 s and exits 0.

Needs _testcapi (built by default; missing only with --disable-test-modules).
"""

import sys

try:
    import _testcapi
except ImportError:
    sys.stderr.write("bpo-36402 repro needs the _testcapi module\n")
    sys.exit(2)

SUBINTERP_CODE = r"""
import threading
import time

class Sleeper:
    def __del__(self):
        time.sleep(0.2)

tls = threading.local()

def f():
    tls.x = Sleeper()

t = threading.Thread(target=f)
t.start()
deadline = time.time() + 10
while t in threading.enumerate() and time.time() < deadline:
    time.sleep(0.001)
# The thread's Python code is done; its thread state is still being cleared
# (Sleeper.__del__ sleeps).  Ending the subinterpreter now exposes the race.
"""

ret = _testcapi.run_in_subinterp(SUBINTERP_CODE)
if ret != 0:
    sys.stderr.write("run_in_subinterp() returned %r\n" % (ret,))
    sys.exit(1)
