"""Parallel maps that keep results in order and memory bounded."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (what a batch scheduler grants), not the machine's."""
    return len(os.sched_getaffinity(0))


def ordered_map(pool: Executor, function: Callable[[T], R], items: Iterable[T], window: int) -> Iterator[R]:
    """``pool.map`` that keeps at most ``window`` items in flight, so memory stays bounded."""
    items = iter(items)
    in_flight = deque(pool.submit(function, item) for item in itertools.islice(items, window))
    while in_flight:
        result = in_flight.popleft().result()
        in_flight.extend(pool.submit(function, item) for item in itertools.islice(items, 1))
        yield result


def process_map(function: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``function`` over ``items`` in order, in ``workers`` processes with two items per process in
    flight; in this process when ``workers`` is 1, so that one worker starts nothing.

    Processes, not threads: work such as parsing tars holds the GIL. They start from a fork server
    (a clean process), never as forks of this one, whose threads and libraries may hold locks.
    ``function`` and the items must pickle.
    """
    if workers == 1:
        yield from map(function, items)
        return
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from ordered_map(pool, function, items, 2 * workers)
