"""A rank that stops on a damaged shard under torchrun: it says why, and the ranks left waiting in its
collectives stop with its reason instead of the backend's traceback."""

from __future__ import annotations

import re

from tests.train.test_main import SMALL, make_set, torchrun_train


def test_the_other_ranks_stop_with_the_reason_of_the_rank_that_stopped(tmp_path):
    data = make_set(tmp_path / "set")
    shard = sorted(data.glob("shard-*.tar"))[-1]
    damaged = bytearray(shard.read_bytes())
    damaged[2000:2100] = bytes(100)  # inside a member: the size stays, the sha256 does not
    shard.write_bytes(bytes(damaged))

    result = torchrun_train("--data", data, "--out", tmp_path / "run", "--epochs", 2, "--batch-size", 4, *SMALL)

    assert result.returncode != 0
    stopped = re.search(rf"^error: (shard {re.escape(str(shard))} .*)$", result.stderr, re.MULTILINE)
    assert stopped, result.stderr
    reason = stopped[1]
    # The ranks print no traceback (torchrun's own summary of the failed launch is not the trainer's).
    assert not re.search(r"^\[rank\d+\]:", result.stderr, flags=re.MULTILINE), result.stderr
    # The survivor says which rank stopped and why, unless torchrun's SIGTERM reached it first.
    survivor = re.search(r"^error: Rank (\d) stopped because rank (\d) stopped: (.*)$", result.stderr, re.MULTILINE)
    if survivor:
        assert survivor[1] != survivor[2] and survivor[3] == reason
    else:
        assert "SIGTERM" in result.stderr, result.stderr
