"""Ctrl-C, SIGTERM and SIGHUP held back while a child is started or killed."""

from __future__ import annotations

import signal
import threading

__all__ = ["DeferredInterrupts"]


class DeferredInterrupts:
    """Hold back SIGINT and SIGTERM from creation until `deliver()`; `pending` says if any came.

    Python raises KeyboardInterrupt at whatever bytecode the main thread is at,
    and two such places in the standard library lose a child:

    - in `subprocess.Popen()`, after the fork, while it waits for the exec: the
      child runs on with nobody holding its Popen to kill it (with a hanging
      repro, a hung interpreter group that outlives the hunt);
    - in `Popen.wait()`/`poll()` between taking the Popen's internal waitpid lock
      and the `try` that releases it: every later wait() blocks forever (so
      `kill_group` hangs and the hunt never exits).

    Holding the handlers back, and polling `pending` where it is safe to act,
    closes both. Only Python-level handlers are held, and only in the main
    thread (the only one Python runs them in); the signal mask is untouched, so
    children inherit nothing unusual. `deliver()` puts the handlers back and
    raises each held-back signal once, so the usual handler (KeyboardInterrupt)
    runs there; as a context manager, on leaving the block.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self._pending: list[int] = []
        self._saved: dict[int, signal._HANDLER] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            for sig in self._SIGNALS:
                if callable(signal.getsignal(sig)):
                    self._saved[sig] = signal.signal(sig, self._hold)
        except BaseException:  # a signal not yet held came meanwhile: undo, let it out
            self.deliver()
            raise

    def _hold(self, signum: int, frame: object) -> None:
        self._pending.append(signum)

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def __enter__(self) -> DeferredInterrupts:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.deliver()

    def deliver(self) -> None:
        """Put the handlers back, then raise each held-back signal (once) to ourselves."""
        saved, self._saved = self._saved, {}
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        pending, self._pending = list(dict.fromkeys(self._pending)), []
        for sig in pending:
            signal.raise_signal(sig)  # the handler runs now: KeyboardInterrupt, usually
