from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from train import distributed
from train.losses import contrastive_loss, distributed_contrastive_loss

WORKER = Path(__file__).with_name("distributed_loss_worker.py")
CASES = ["simclr-pairs", "multipositive-4-views", "supcon-uneven-anchors"]


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Run the worker on two gloo ranks with torchrun and load what each rank saved."""
    out = tmp_path_factory.mktemp("ranks")
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(WORKER), str(out)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=180,
                              env=environment | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert finished.returncode == 0, finished.stderr[-3000:]
    return [torch.load(out / f"rank-{rank}.pt", weights_only=True) for rank in range(2)]


def single_process(case: dict, initial_state: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model = torch.nn.Linear(6, 4)
    model.load_state_dict(initial_state)
    loss = contrastive_loss(model(case["inputs"]), case["labels"], case["temperature"])
    loss.backward()
    return loss.detach(), {name: param.grad for name, param in model.named_parameters()}


def test_torchrun_ranks_are_set_up_from_the_environment(rank_results: list[dict]) -> None:
    assert [result["info"] for result in rank_results] == [[0, 2, 0, True, "cpu"], [1, 2, 1, False, "cpu"]]


@pytest.mark.parametrize("case_name", CASES)
def test_ddp_loss_and_gradients_equal_single_process(rank_results: list[dict], case_name: str) -> None:
    cases = [result["cases"][case_name] for result in rank_results]
    loss, grads = single_process(cases[0], rank_results[0]["initial_state"])

    torch.testing.assert_close((cases[0]["rank_loss"] + cases[1]["rank_loss"]) / 2, loss, atol=1e-6, rtol=1e-6)
    for case in cases:
        torch.testing.assert_close(case["mean_loss"], loss, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(case["gathered_inputs"], case["inputs"], atol=0, rtol=0)
        for name, grad in grads.items():
            torch.testing.assert_close(case["grads"][name], grad, atol=1e-6, rtol=1e-5)


def test_helpers_are_the_identity_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = distributed.setup_distributed(use_cuda=False)
    tensor = torch.randn(3, 2, requires_grad=True)
    distributed.gather_with_grad(tensor).sum().backward()

    assert info == distributed.DistInfo(0, 1, 0, torch.device("cpu"), True)
    assert not distributed.is_distributed() and distributed.rank() == 0
    assert torch.equal(tensor.grad, torch.ones(3, 2))
    assert distributed.all_gather_no_grad(tensor) is tensor
    assert distributed.all_reduce_mean(2.5) == 2.5
    distributed.barrier()
    distributed.cleanup()


def test_distributed_loss_in_one_process_is_the_plain_loss() -> None:
    embeddings, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.equal(distributed_contrastive_loss(embeddings, labels, 0.1), contrastive_loss(embeddings, labels, 0.1))


@pytest.mark.parametrize("variables, message", [
    ({"WORLD_SIZE": "2", "RANK": "one", "LOCAL_RANK": "0"}, "RANK must be a non-negative integer"),
    ({"WORLD_SIZE": "2", "RANK": "1"}, "LOCAL_RANK must be a non-negative integer"),
])
def test_malformed_launch_environment_raises_one_sentence(monkeypatch: pytest.MonkeyPatch, variables: dict,
                                                          message: str) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(distributed.DistributedSetupError, match=message):
        distributed.setup_distributed(use_cuda=False)
