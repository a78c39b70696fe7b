"""Distributed set-up and the few collectives training needs; in one process every helper is the identity.

``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK; without WORLD_SIZE the run is a single process and
no process group is created. NCCL is used when CUDA is, gloo on CPU.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from common.errors import UserError

Value = TypeVar("Value", torch.Tensor, float)


class DistributedSetupError(UserError):
    """The process cannot join the run as launched; the message is one sentence for the user."""


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    is_main: bool


def setup_distributed(use_cuda: bool | None = None) -> DistInfo:
    """Join the process group torchrun describes, or describe a single process when not launched by it.

    ``use_cuda`` None means CUDA whenever it is available; False forces CPU and gloo.
    """
    cuda = torch.cuda.is_available() if use_cuda is None else use_cuda
    if cuda and not torch.cuda.is_available():
        raise DistributedSetupError("CUDA was asked for but no CUDA device is available.")
    if "WORLD_SIZE" not in os.environ:
        return DistInfo(0, 1, 0, torch.device("cuda", 0) if cuda else torch.device("cpu"), True)
    rank, world_size, local_rank = (_env_int(name) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise DistributedSetupError(
                f"Local rank {local_rank} has no GPU of its own ({torch.cuda.device_count()} visible); "
                "start at most one process per GPU.")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return DistInfo(rank, world_size, local_rank, device, rank == 0)


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    if not value.isdigit():
        raise DistributedSetupError(
            f"Environment variable {name} must be a non-negative integer (got {value!r}); launch with torchrun.")
    return int(value)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the default group (0 in a single process)."""
    return dist.get_rank() if is_distributed() else 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # Every rank's loss depends on this rank's rows: sum all ranks' gradients, keep our slice.
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        rows = grad.shape[0] // dist.get_world_size()
        start = dist.get_rank() * rows
        return grad[start:start + rows]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` concatenated along dim 0 in rank order; gradients flow back to each rank.

    All ranks must pass the same shape. The backward pass returns this rank's slice of the gradient
    summed over ranks, so with DDP's gradient averaging the result equals single-process training on
    the whole batch.
    """
    return _GatherWithGrad.apply(tensor) if is_distributed() else tensor


def all_gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` concatenated along dim 0 in rank order, without gradient (same shape on all ranks)."""
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def all_reduce_mean(value: Value) -> Value:
    """The mean of ``value`` over ranks, returned as the same kind (a detached tensor or a float)."""
    if not is_distributed():
        return value
    if isinstance(value, torch.Tensor):
        tensor = value.detach().clone()
    else:
        tensor = torch.tensor(float(value), dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor)
    tensor /= dist.get_world_size()
    return tensor if isinstance(value, torch.Tensor) else tensor.item()


def _collective_device() -> torch.device:
    # NCCL only moves CUDA tensors.
    if dist.get_backend() == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# Where a rank that stops leaves its reason: torchrun's store outlives the rank, and a key of the
# default group's store is of this launch attempt only.
STOP_KEY = "genviews/stopped"


def announce_stop(reason: str) -> None:
    """Leave this rank's reason for stopping where the other ranks look once their collectives fail."""
    if is_distributed():
        with contextlib.suppress(Exception):  # the rank stops anyway, and says why on its own stderr
            dist.distributed_c10d._get_default_store().set(STOP_KEY, f"rank {rank()} stopped: {reason}")


def stop_of_another_rank() -> str | None:
    """The reason another rank left before it stopped, or None when none did (or it cannot be read)."""
    if not is_distributed():
        return None
    with contextlib.suppress(Exception):
        store = dist.distributed_c10d._get_default_store()
        if store.check([STOP_KEY]):
            return store.get(STOP_KEY).decode()
    return None


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
