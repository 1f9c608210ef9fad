"""Batches of independent tasks, run in this process or on a Dask cluster, with nothing lost.

A batch is a list of :class:`Task`: a module-level function, its arguments, the files it writes
and a *fingerprint* of what made them (input, model or weights, settings). :func:`run_batch`

- skips a task whose outputs all exist, are complete and carry its fingerprint (a PNG text
  chunk, a GIF comment: :func:`read_fingerprint`), unless ``overwrite``; so a batch whose client
  was killed is finished by running the same command again;
- runs the others here, one after another, or on a cluster (:mod:`numstyle.cluster`, which
  imports Dask and is imported only when a cluster is asked for), where the data every task
  needs (``shared``: weights, a model) is sent to each worker once;
- shows one progress bar over the batch (tasks done / total, failures);
- catches a task's user error (:class:`numstyle.errors.NumstyleError`, memory, a disk) and goes
  on: the failures are returned by input name, for the command to report at the end.

A worker killed mid-task (SIGKILL, out of memory) costs only its task: Dask runs it again on
another worker. The outputs are written by the tasks themselves, atomically
(:func:`numstyle.files.atomic_path`), so a file that exists is complete.
"""
import contextlib
import hashlib
import importlib
import io
import json
import os
from dataclasses import dataclass, field

from PIL import Image
from tqdm import tqdm

from . import settings
from .errors import NumstyleError
from .fast.memory import keep_freed_memory
from .fast.parallel import bands_take_the_cores

FINGERPRINT_KEY = "numstyle-fingerprint"   # the PNG text chunk's key
CLUSTER_EXTRA = "pip install -e '.[cluster]'"
FORMAT_VERSION = 1                          # of what a fingerprint covers


@dataclass
class Task:
    """One independent piece of a batch.

    Attributes
    ----------
    name : str
        What a failure names: the input.
    func : callable
        A module-level function ``func(shared, *args) -> record`` (a dict, or any picklable
        result); it raises NumstyleError for a user error.
    args : tuple
        Its arguments after ``shared``; sent with the task.
    outputs : tuple of str
        The files it writes, each stamped with ``fingerprint``; empty: never skipped.
    fingerprint : str or None
        :func:`fingerprint` of its input, model and settings (None: never skipped).
    """

    name: str
    func: object
    args: tuple = ()
    outputs: tuple = ()
    fingerprint: str = None


@dataclass
class Outcome:
    """What :func:`run_batch` did: ``results`` by task index (run tasks only), the indices it
    ``skipped`` (done before), and ``failed``: ``[(name, message), ...]``."""

    results: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)


@dataclass(frozen=True)
class Where:
    """Where a batch runs: ``workers`` local processes, or the cluster at ``scheduler``; neither:
    in this process."""

    workers: int = None
    scheduler: str = None

    @property
    def in_process(self):
        return not (self.workers or self.scheduler)


def where_from_args(args):
    """:class:`Where` from ``--workers`` and ``--scheduler`` (or ``NUMSTYLE_SCHEDULER``)."""
    workers = getattr(args, "workers", None)
    scheduler = getattr(args, "scheduler", None)
    if workers and scheduler:
        raise NumstyleError("give --workers N (a local cluster) or --scheduler ADDRESS (an "
                            "existing one), not both")
    if not workers and not scheduler:
        scheduler = settings.get().scheduler
    where = Where(workers=workers, scheduler=scheduler or None)
    if not where.in_process:
        cluster_module()      # a missing Dask: said now, before any work
    return where


def fingerprint(*parts):
    """A hex digest of ``parts`` (JSON-able: file digests, settings), with numstyle's version of
    what an output depends on."""
    text = json.dumps([FORMAT_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path, chunk=1 << 20):
    """SHA-256 of a file's bytes (an input's identity, whatever its name or time stamp)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_fingerprint(path):
    """The fingerprint an output carries, or None: missing, unreadable, incomplete (every pixel
    is decoded), or made without one."""
    if not os.path.isfile(path):
        return None
    try:
        with Image.open(path) as im:
            im.load()
            text = getattr(im, "text", None) or {}
            found = text.get(FINGERPRINT_KEY) or im.info.get(FINGERPRINT_KEY)
            comment = im.info.get("comment")
    except (OSError, SyntaxError, ValueError):
        return None
    if found is None and isinstance(comment, bytes):       # a GIF's comment extension
        comment = comment.decode("ascii", "replace")
        if comment.startswith(FINGERPRINT_KEY + "="):
            found = comment.split("=", 1)[1]
    return found


def is_done(task):
    """Whether every output of ``task`` exists, is complete and carries its fingerprint."""
    return bool(task.fingerprint and task.outputs) and all(
        read_fingerprint(p) == task.fingerprint for p in task.outputs)


def engine_state():
    """What a worker must run like this process: the engine settings it cannot read from its own
    environment (``--reference``)."""
    return {"reference": settings.get().reference}


def call(func, shared, args):
    """Run one task: ``{"result": ...}``, or ``{"error": message}`` for a user error.

    Its messages are not the batch's: stdout is kept (the client prints one line per output).
    """
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return {"result": func(shared, *args)}
        except NumstyleError as e:
            return {"error": str(e)}
        except MemoryError:
            return {"error": "out of memory: try a smaller --size"}
        except OSError as e:   # a disk that filled up or went away mid-write
            return {"error": f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")}


_prepared = []


def remote_call(func, shared, args, engine):
    """:func:`call` on a worker, which first takes the client's engine settings (once per
    process: its ``NUMSTYLE_THREADS``, BLAS on one thread as the command does).

    A Dask worker also keeps freed memory (:func:`numstyle.fast.memory.keep_freed_memory`):
    Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which hands freed memory
    back at once, and every layer's arrays were faulted in again: a Gatys job took 1.5x its
    in-process time (docs/benchmarks.md)."""
    if _prepared != [engine]:
        settings.reload()
        settings.update(**engine)
        if not engine.get("reference"):
            bands_take_the_cores()
        keep_freed_memory()
        _prepared[:] = [engine]
    return call(func, shared, args)


def cluster_module():
    """:mod:`numstyle.cluster` (Dask imported now); a one-line error naming the extra if Dask is
    missing."""
    try:
        return importlib.import_module(".cluster", __package__)
    except ImportError as e:
        missing = e.name or str(e)   # dask.distributed re-raises without a name
        if "dask" in missing or "distributed" in missing:
            raise NumstyleError(f"--workers and --scheduler need Dask: {CLUSTER_EXTRA}") from None
        raise


def run_batch(tasks, shared=None, where=Where(), overwrite=False, progress=True, desc="batch",
              on_result=None):
    """Run ``tasks``; return their :class:`Outcome`.

    Parameters
    ----------
    tasks : list of Task
    shared : object
        What every task needs (weights, a model): passed as each function's first argument; on
        a cluster sent to every worker once.
    where : Where
        In this process (default), ``workers`` local processes, or a ``scheduler``'s cluster.
    overwrite : bool
        Run every task, even those whose outputs are done (:func:`is_done`).
    progress : bool
        One progress bar (stderr): tasks done / total, failures.
    on_result : callable, optional
        ``on_result(index, result)`` on this process as each task finishes, in any order.
    """
    outcome = Outcome()
    todo = []
    for i, task in enumerate(tasks):
        if not overwrite and is_done(task):
            outcome.skipped.append(i)
        else:
            todo.append(i)
    cluster = None if where.in_process or not todo else cluster_module()
    bar = tqdm(total=len(todo), desc=desc, unit="task", disable=not progress or len(todo) < 2)

    def done(i, answer):
        if "error" in answer:
            outcome.failed.append((tasks[i].name, answer["error"]))
            bar.set_postfix(failed=len(outcome.failed))
        else:
            outcome.results[i] = answer["result"]
            if on_result is not None:
                on_result(i, answer["result"])
        bar.update(1)

    with bar:
        if where.in_process:
            for i in todo:
                done(i, call(tasks[i].func, shared, tasks[i].args))
        elif todo:
            with cluster.connect(where.workers, where.scheduler) as client:
                cluster.run_tasks(client, [(i, tasks[i]) for i in todo], shared, engine_state(),
                                  done)
    outcome.failed.sort()
    return outcome


def skipped_message(skipped, total, what="inputs"):
    """The line that says how many outputs a rerun found done."""
    return (f"skipped {skipped} of {total} {what}: their outputs were made before from the same "
            "input, model and settings (--overwrite redoes them)")


def failures_message(outcome, total, what="inputs"):
    """The one line that ends a batch with failures, naming each failed input."""
    names = "; ".join(f"{name}: {message}" for name, message in outcome.failed)
    return f"{len(outcome.failed)} of {total} {what} failed ({names})"
