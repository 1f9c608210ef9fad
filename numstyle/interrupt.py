"""What Ctrl-C (SIGINT) and a polite kill (SIGTERM) do to a run: one policy for every command.

SIGTERM is what ``kill``, ``timeout``, ``docker stop`` and every batch scheduler send, so it
is treated exactly as Ctrl-C:

- anywhere, either signal raises :class:`Interrupted` (a KeyboardInterrupt): ``finally``
  blocks run, temporary files go, the command exits with 128 + the signal's number
  (:func:`signals_interrupt`);
- in a loop that can stop cleanly -- a training, a Gatys optimisation -- the first signal only
  asks it to stop after the iteration in progress, so that the checkpoint or the latest image
  is written; a second stops at once (:class:`StopOnSignal`);
- while a file is being written both wait until the write is done or undone (:func:`held`):
  an interrupted write would leave its temporary file behind, and a KeyboardInterrupt raised
  inside h5py's clean-up is printed as "Exception ignored in ..." and lost.

Handlers can only be set in the main thread; elsewhere these do nothing.
"""
import contextlib
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by ``signum`` (SIGINT: Ctrl-C, SIGTERM: a kill)."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def signal_of(exc):
    """The signal behind a KeyboardInterrupt: its ``signum``, else SIGINT (Python's own)."""
    return getattr(exc, "signum", int(signal.SIGINT))


def exit_status(exc):
    """The shell's convention for a process stopped by a signal: 128 + its number."""
    return 128 + signal_of(exc)


def stopped_word(exc):
    """'interrupted' (Ctrl-C) or 'terminated' (SIGTERM), for the messages that say so."""
    return "interrupted" if signal_of(exc) == signal.SIGINT else "terminated"


@contextlib.contextmanager
def _handling(handler):
    """``handler`` for SIGINT and SIGTERM inside the block; the previous ones put back after."""
    old = {}
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            previous = signal.getsignal(s)
            if previous is not None:  # None: set outside Python, could not be put back
                old[s] = previous
    try:
        for s in old:
            signal.signal(s, handler)
        yield
    finally:
        for s, previous in old.items():
            signal.signal(s, previous)


def _raise(signum, frame):
    raise Interrupted(signum)


def signals_interrupt():
    """Inside the block SIGTERM raises :class:`Interrupted` as Ctrl-C does (the commands' policy
    outside the loops that stop cleanly)."""
    return _handling(_raise)


def ignore_signals():
    """Inside the block SIGINT and SIGTERM do nothing (a run that is already stopping)."""
    return _handling(signal.SIG_IGN)


@contextlib.contextmanager
def held():
    """SIGINT and SIGTERM wait until the block is over, then go to the handler in place then.

    For file writes: the write completes (or its ``finally`` undoes it) before the signal acts.
    """
    pending = []
    try:
        with _handling(lambda signum, frame: pending.append(signum)):
            yield
    finally:
        for s in pending:  # each one: two Ctrl-C during a checkpoint still mean "stop now"
            signal.raise_signal(s)  # runs the handler now in place (which may raise, from here)


class StopOnSignal:
    """Within ``with``: the first SIGINT or SIGTERM sets :attr:`requested` -- the loop finishes the
    iteration in progress, writes what it must, then calls :meth:`stop`; a second signal raises
    :class:`Interrupted` at once.

    Parameters
    ----------
    what : str
        The unit the loop finishes, for the message ("iteration").
    """

    def __init__(self, what="iteration"):
        self.what, self.signum = what, None
        self._ctx = None

    @property
    def requested(self):
        return self.signum is not None

    def __enter__(self):
        self._ctx = _handling(self._handle)
        self._ctx.__enter__()
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise Interrupted(signum)
        self.signum = signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\n{name}: stopping after this {self.what} ({name} again to stop now)",
              file=sys.stderr, flush=True)

    def stop(self):
        """Raise :class:`Interrupted` for the signal received (at the loop's clean stop)."""
        raise Interrupted(self.signum)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
