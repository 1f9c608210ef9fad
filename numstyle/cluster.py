"""A batch on a Dask cluster: a local one of N worker processes, or an existing one.

Imported only when ``--workers`` or ``--scheduler`` is given
(:func:`numstyle.batch.cluster_module`), since importing Dask takes a second; it needs the
``cluster`` extra (``pip install -e '.[cluster]'``).

- :func:`connect` starts ``LocalCluster(n_workers=N, threads_per_worker=1)``: N processes, each
  with ``NUMSTYLE_THREADS`` = cores / N so that together they use every core once (numstyle's
  bands are the parallelism inside a task), and with this process's numstyle on their path; or
  it connects to the scheduler at an address (``tcp://host:8786``), whose workers are started by
  ``dask worker``, dask-jobqueue or dask-kubernetes (docs/cluster.md).
- :func:`run_tasks` scatters what every task needs to every worker once (``broadcast``), submits
  the tasks and hands each answer back as it comes. A worker that dies mid-task (SIGKILL, out of
  memory) makes the scheduler run its task again on another worker (up to Dask's
  ``distributed.scheduler.allowed-failures``, 3 by default), after which the task counts as
  failed, not the batch.
"""
import contextlib
import logging
import os
import signal
import warnings

import dask
from dask.distributed import Client, LocalCluster, as_completed

from .batch import remote_call
from .errors import NumstyleError

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Dask's statistical profiler samples every worker thread's stack every 10 ms, holding the GIL:
# numstyle's many small array operations ran ~10-20 % slower under it (docs/benchmarks.md).
# On a cluster of your own: DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False (docs/cluster.md).
# Each local worker runs this module's dask_setup as it starts (Dask's preload).
WORKER_CONFIG = {"distributed.worker.profile.enabled": False,
                 "distributed.worker.preload": [__name__]}


def dask_setup(worker):
    """In each local worker process, as it starts: ignore Ctrl-C. A terminal (or ``timeout``)
    signals the whole process group; this process handles it and stops the workers in order,
    while a worker that took it too died mid-task printing Dask's tracebacks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_threads(workers):
    """``NUMSTYLE_THREADS`` for each of ``workers`` local workers: this machine's cores shared."""
    return max(1, (os.cpu_count() or 1) // workers)


@contextlib.contextmanager
def connect(workers=None, scheduler=None):
    """A ``Client`` of a new local cluster of ``workers`` processes, or of the cluster at
    ``scheduler``; closed (and the local cluster stopped) at the end of the block."""
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except ValueError as e:  # Dask's parse of the address: 'localhost' has no port
            raise NumstyleError(f"--scheduler {scheduler}: {str(e).splitlines()[0][:160]}; give "
                                "it as tcp://HOST:PORT (a scheduler listens on 8786 unless "
                                "told otherwise)") from None
        except (OSError, TimeoutError) as e:
            raise NumstyleError(f"cannot reach the Dask scheduler at {scheduler}: "
                                f"{str(e).splitlines()[0][:160]}") from None
        with client:
            yield client
        return
    path = os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
    env = {"NUMSTYLE_THREADS": str(worker_threads(workers)), "PYTHONPATH": path,
           "OMP_NUM_THREADS": "1"}
    # silence_logs: a task's error comes back with its answer, a lost worker as KilledWorker;
    # what Dask logs itself is shutdown noise (a heartbeat's CommClosedError, 1 run in ~12)
    with dask.config.set(WORKER_CONFIG), LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=logging.CRITICAL, env=env) as cluster, Client(cluster) as client:
        yield client


def run_tasks(client, tasks, shared, engine, done):
    """Submit ``tasks`` (``[(index, Task), ...]``) to ``client``'s cluster; call
    ``done(index, answer)`` here as each finishes (:func:`numstyle.batch.call`'s answer).

    ``shared`` reaches every worker once, scattered with ``broadcast``; each task gets it by
    reference. A task lost for good (its workers kept dying) is answered as an error.
    """
    [shared_ref] = client.scatter([shared], broadcast=True, hash=False)
    futures = {}
    with warnings.catch_warnings():  # a video's chunk of frames is a large task by design
        warnings.filterwarnings("ignore", message="Sending large graph")
        for index, task in tasks:
            future = client.submit(remote_call, task.func, shared_ref, task.args, engine,
                                   pure=False, key=f"numstyle-{index}-{os.urandom(4).hex()}")
            futures[future] = index
    for future in as_completed(futures):
        try:
            answer = future.result()
        except Exception as e:  # noqa: BLE001 -- KilledWorker, a lost dependency, a bug
            answer = {"error": f"lost on the cluster: {type(e).__name__}: "
                               f"{str(e).splitlines()[0][:160] if str(e) else ''}"}
        done(futures[future], answer)
