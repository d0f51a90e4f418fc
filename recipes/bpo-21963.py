# Standalone repro, run by many CPython versions (2.7 syntax where a hunt spans 2.7):
# ruff: noqa: UP004, UP036, PLC0415
"""bpo-21963: Python 2.7.8 hangs at exit when a thread is started from __del__.

2.7.8 carried a backport of the bpo-1856 fix: once Py_Finalize() has begun,
any thread other than the finalizing one is killed as soon as it tries to
re-take the GIL.  Ceph's rados.py called Rados.shutdown() from __del__,
which ran its C call in a helper thread (run_in_thread: start a Thread,
then join it).  During module cleanup that new thread is killed before it
can signal Thread.start() that it has started, so the main thread waits for
ever: "ceph" hung at exit (tracker.ceph.com/issues/8797).  2.7.9 reverted
the backport.

The pattern below mimics it: a module global whose __del__ starts a thread
and joins it.  Healthy 2.7 (2.7.7, 2.7.9+) runs the thread and exits 0; an
affected 2.7 hangs, which the tool's timeout reports.

Python 3 is out of scope: there the same pattern hangs by design on 3.3 -
3.11 (daemon-killing is the documented behaviour since 3.3) and raises
"can't create new thread at interpreter shutdown" on 3.12+.  So on Python 3
this script only says so and exits 0; the recipe's hunts span 2.7 only.
"""

import sys

if sys.version_info[0] >= 3:
    sys.stdout.write("bpo-21963 is a Python 2.7 regression; nothing to do on Python 3\n")
    sys.exit(0)

import threading


def _work():
    # Stands in for rados_shutdown(): any short call that releases the GIL.
    import time

    time.sleep(0.01)


class Rados(object):
    def __del__(self, threading=threading, work=_work):
        t = threading.Thread(target=work)
        t.daemon = True
        t.start()  # an affected 2.7 never returns from here
        t.join()


cluster = Rados()
