"""Fixtures for the tests of remote sets: a set served by a faulty HTTP server on loopback
(tests/shards/faulty_server.py), quick network settings, and a bound on each case's time."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.shards.faulty_server import FaultyServer
from tests.shards.helpers import write_synthetic_set

CASE_BOUND_SECONDS = 60  # a case with a server that misbehaves ends within this, or fails


PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy",
                   "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


@pytest.fixture
def quick_network(monkeypatch) -> None:
    """Faults show in seconds: 1 s without a byte is a fault, 2 tries in a row fail a read. The
    servers are on loopback: a proxy of the machine's environment is not used unless a test sets one."""
    monkeypatch.setenv("GENVIEWS_NET_TIMEOUT", "1")
    monkeypatch.setenv("GENVIEWS_NET_TRIES", "2")
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def bounded_case():
    """A case that hangs fails here instead of holding up the suite."""
    def give_up(*_: object) -> None:
        raise TimeoutError(f"the case did not end within {CASE_BOUND_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(CASE_BOUND_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def served_folder(tmp_path_factory) -> Path:
    """A folder holding ``set``: 16 groups in 4 shards (2 batches of 8)."""
    root = tmp_path_factory.mktemp("served")
    write_synthetic_set(root / "set", groups=16, groups_per_shard=4)
    return root


@pytest.fixture
def server(served_folder: Path):
    """A FaultyServer of ``served_folder``, without faults until a test sets them."""
    with FaultyServer(served_folder) as running:
        yield running
