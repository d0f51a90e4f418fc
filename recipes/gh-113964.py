# Standalone repro (Python 3 only).
# ruff: noqa: UP031
"""gh-113964: 3.12 refuses to start threads while non-daemon threads still run.

gh-104690 (ce558e69, 3.12) made _thread.start_new_thread() raise
"RuntimeError: can't create new thread at interpreter shutdown" as soon as
Py_Finalize() began - including the phase where it is still waiting for
non-daemon threads to finish.  A non-daemon thread that starts a helper
thread after the main thread returned therefore fails on 3.12.0 - 3.12.2.
The fix (60e105c1 on main, backported for 3.12.3) only refuses once all
non-daemon threads are done.

The worker thread below starts a thread after the main thread has returned.
On an affected interpreter the RuntimeError is raised inside the worker;
the script turns it into exit status 1 with the error message on stderr,
so the recipe hunts an "error" whose output matches it.  Healthy: exit 0.
(Starting threads from atexit handlers is still refused on 3.12+ - gh-113964
left that open - so the repro deliberately avoids that case.)
"""

import os
import sys
import threading
import time


def helper():
    pass


def worker():
    time.sleep(0.2)  # let the main thread return and Py_Finalize() start waiting
    try:
        t = threading.Thread(target=helper)
        t.start()
        t.join()
    except RuntimeError as exc:
        sys.stderr.write("gh-113964: RuntimeError: %s\n" % (exc,))
        sys.stderr.flush()
        os._exit(1)


threading.Thread(target=worker).start()
