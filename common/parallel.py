"""A parallel map that keeps results in order and memory bounded."""

from __future__ import annotations

import itertools
from collections import deque
from concurrent.futures import Executor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(pool: Executor, function: Callable[[T], R], items: Iterable[T], window: int) -> Iterator[R]:
    """``pool.map`` that keeps at most ``window`` items in flight, so memory stays bounded."""
    items = iter(items)
    in_flight = deque(pool.submit(function, item) for item in itertools.islice(items, window))
    while in_flight:
        result = in_flight.popleft().result()
        in_flight.extend(pool.submit(function, item) for item in itertools.islice(items, 1))
        yield result
