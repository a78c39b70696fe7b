"""One rank of the uneven-shards check: run under torchrun with gloo; writes rank-N.json to argv[2].

Each rank iterates two epochs of the shard set at argv[1] with two DataLoader workers and does an
all_reduce per batch, so a rank that ran out of batches early would hang the other one.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from shards import open_set
from train.augment import AugmentConfig
from train.data import build_loader
from train.sources import DataSource

BATCH_SIZE = 4
EPOCHS = 2


def main(set_location: str, out: Path) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    rank, world_size = dist.get_rank(), dist.get_world_size()
    loader = build_loader([DataSource(open_set(set_location))], batch_size=BATCH_SIZE, views=2,
                          augment=AugmentConfig(crop_size=16), num_workers=2, seed=7, rank=rank,
                          world_size=world_size)
    batches_per_epoch, anchors = [], set()
    for epoch in range(EPOCHS):
        count = 0
        for batch in loader.epoch(epoch):
            total = torch.tensor([len(batch.group_ids)])
            dist.all_reduce(total)
            anchors.update(batch.group_ids.tolist())
            count += 1
        batches_per_epoch.append(count)
    result = {"rank": rank, "batches": batches_per_epoch, "steps_per_epoch": loader.steps_per_epoch,
              "global_batch": int(total), "anchors": sorted(anchors)}
    (out / f"rank-{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
