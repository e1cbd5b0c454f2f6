"""Running generation work on every core: a process pool of single-threaded workers.

Why processes and not torch's intra-op threads: on a shared machine (other
jobs on the same two cores) OpenMP threads that wait for each other at every
operation's barrier made each op ~20x slower in measurement, while
single-threaded processes degrade gracefully. Workers write their part of the
cache straight into the memory-mapped file, so no image crosses a pipe.

The pool is forked where the platform allows (as PyTorch's DataLoader does:
workers set torch to one thread before touching it), so it needs no
``if __name__ == "__main__"`` guard in user scripts; elsewhere it spawns.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

import torch

from .progress import progress_bar

__all__ = ["default_processes", "run_tasks", "torch_threads"]


def default_processes() -> int:
    """Worker processes to use: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily run torch's CPU ops on ``n`` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _init_worker() -> None:
    torch.set_num_threads(1)


def run_tasks(
    worker: Callable[[Any], Any],
    tasks: Sequence[Any],
    *,
    description: str,
    weights: Sequence[int] | None = None,
    processes: int | None = None,
    progress: bool = True,
) -> list[Any]:
    """``[worker(task) for task in tasks]`` across processes, with a progress bar.

    ``worker`` and the tasks must be picklable (a module-level function, plain
    data). ``weights`` (e.g. images per task) drive the bar. With one process
    or one task everything runs here, single-threaded.
    """
    weights = list(weights) if weights is not None else [1] * len(tasks)
    processes = min(processes or default_processes(), len(tasks))
    results: list[Any] = [None] * len(tasks)
    with progress_bar(disable=not progress) as bar:
        task_id = bar.add_task(description, total=sum(weights))
        if processes <= 1:
            with torch_threads(1):
                for i, task in enumerate(tasks):
                    results[i] = worker(task)
                    bar.advance(task_id, weights[i])
            return results
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ProcessPoolExecutor(processes, mp_context=context, initializer=_init_worker) as pool:
            futures = {pool.submit(worker, task): i for i, task in enumerate(tasks)}
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        i = futures[future]
                        results[i] = future.result()  # re-raises a worker's exception here
                        bar.advance(task_id, weights[i])
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    return results
