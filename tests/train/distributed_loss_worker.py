"""One rank of the two-process loss check, started by torchrun from test_distributed_loss.py.

Each rank takes its half of fixed global batches, runs them through a small linear model wrapped in
DistributedDataParallel and the distributed contrastive loss, and saves what it saw to OUT/rank-R.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from train import distributed
from train.losses import distributed_contrastive_loss

GLOBAL_LABELS = {
    "simclr-pairs": [0, 1, 2, 3, 0, 1, 2, 3],
    "multipositive-4-views": [0, 1, 0, 1, 0, 1, 0, 1],
    # rank 0's anchors 2 and 3 have no positive, rank 1's all have one
    "supcon-uneven-anchors": [0, 1, 2, 3, 0, 0, 1, 1],
}
TEMPERATURE = 0.2


def main(out: Path) -> None:
    info = distributed.setup_distributed()
    torch.manual_seed(0)  # the same model and inputs on every rank
    model = torch.nn.Linear(6, 4)
    initial_state = {name: value.clone() for name, value in model.state_dict().items()}
    ddp_model = DistributedDataParallel(model)
    results = {"info": [info.rank, info.world_size, info.local_rank, info.is_main, str(info.device)],
               "initial_state": initial_state, "cases": {}}
    for case, labels in GLOBAL_LABELS.items():
        inputs = torch.randn(len(labels), 6)
        rows = slice(info.rank * len(labels) // info.world_size, (info.rank + 1) * len(labels) // info.world_size)
        ddp_model.zero_grad()
        loss = distributed_contrastive_loss(ddp_model(inputs[rows]), torch.tensor(labels)[rows], TEMPERATURE)
        loss.backward()
        results["cases"][case] = {
            "inputs": inputs, "labels": torch.tensor(labels), "temperature": TEMPERATURE,
            "rank_loss": loss.detach(), "mean_loss": distributed.all_reduce_mean(loss),
            "gathered_inputs": distributed.all_gather_no_grad(inputs[rows]),
            "grads": {name: param.grad.clone() for name, param in model.named_parameters()},
        }
    torch.save(results, out / f"rank-{info.rank}.pt")
    distributed.barrier()
    distributed.cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
