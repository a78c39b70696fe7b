"""A rank that stops on a damaged shard under torchrun: it says why, and the ranks left waiting in its
collectives stop with its reason instead of the backend's traceback."""

from __future__ import annotations

import re
import subprocess
import sys

import torch.distributed as dist

from tests.cli import cli_env
from tests.train.test_main import SMALL, TRAIN, make_set
from train import distributed


def test_the_other_ranks_stop_with_the_reason_of_the_rank_that_stopped(tmp_path):
    data = make_set(tmp_path / "set")
    shard = sorted(data.glob("shard-*.tar"))[-1]
    damaged = bytearray(shard.read_bytes())
    damaged[2000:2100] = bytes(100)  # inside a member: the size stays, the sha256 does not
    shard.write_bytes(bytes(damaged))

    # torchrun looks at its ranks every 5 s here, so that it does not stop the survivor before the
    # survivor's collective fails (every 0.1 s by default, when a survivor may or may not get to speak).
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "--monitor-interval", "5", str(TRAIN), "--data", str(data), "--out", str(tmp_path / "run"),
                             "--epochs", "2", "--batch-size", "4", *SMALL],
                            env=cli_env(), capture_output=True, text=True, timeout=300)

    assert result.returncode != 0
    stopped = re.search(rf"^error: (shard {re.escape(str(shard))} .*)$", result.stderr, re.MULTILINE)
    assert stopped, result.stderr
    survivor = re.search(r"^error: Rank (\d) stopped because rank (\d) stopped: (.*)$", result.stderr, re.MULTILINE)
    assert survivor and survivor[1] != survivor[2] and survivor[3] == stopped[1], result.stderr
    # The ranks print no traceback (torchrun's own summary of the failed launch is not the trainer's).
    assert not re.search(r"^\[rank\d+\]:", result.stderr, flags=re.MULTILINE), result.stderr


def test_a_reason_left_in_the_store_is_what_the_others_read():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        assert distributed.stop_of_another_rank() is None
        reason = "shard X has a sha256 that differs from the manifest."
        distributed.announce_stop(reason)
        assert distributed.stop_of_another_rank() == f"rank 0 stopped: {reason}"
    finally:
        dist.destroy_process_group()
    assert distributed.stop_of_another_rank() is None  # no group: nothing to read
