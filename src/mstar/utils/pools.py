"""Worker process pools that die with their parent.

A ``ProcessPoolExecutor`` worker blocks on its task queue; when the parent is killed (``kill -9``, the OOM
killer, a scheduler's time limit) nobody tells it, and each worker lives on holding its memory. Every pool of
mstar is made here: spawned interpreters (no inherited slide handles or threads) whose initialiser starts a
watcher thread that ends the worker as soon as its parent is gone.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

PARENT_POLL_S = 1.0


def _watch_parent(parent_pid: int, poll_s: float) -> None:
    while True:
        if os.getppid() != parent_pid:  # re-parented: the parent died
            os._exit(1)
        time.sleep(poll_s)


def _init_worker(parent_pid: int, poll_s: float) -> None:
    threading.Thread(target=_watch_parent, args=(parent_pid, poll_s), daemon=True,
                     name="mstar-parent-watch").start()


def process_pool(workers: int, poll_s: float = PARENT_POLL_S) -> ProcessPoolExecutor:
    """A spawn-context ``ProcessPoolExecutor`` of ``workers`` processes that exit within ``poll_s`` seconds
    of their parent's death."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                               initializer=_init_worker, initargs=(os.getpid(), poll_s))
