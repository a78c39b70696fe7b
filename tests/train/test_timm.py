"""timm backbones end to end: a ViT-Tiny trained a few steps on 32-px images, evaluated, exported to
safetensors and loaded back into a plain timm model."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from evaluate.cli import cli as evaluate_cli
from tests.cli import assert_clean_failure, run_in_process
from tests.train.test_main import make_set, read_metrics, train_in_process
from train.checkpoint import load_encoder

VIT = "vit_tiny_patch16_224"


@pytest.fixture(scope="module")
def labelled_set(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("data") / "labelled", anchors=32)


def test_a_timm_vit_trains_evaluates_exports_and_loads_back_into_timm(tmp_path, labelled_set):
    run = tmp_path / "vit"
    trained = train_in_process("--data", labelled_set, "--out", run, "--backbone", f"timm:{VIT}", "--steps", 3,
                               "--batch-size", 8, "--crop-size", 32, "--optimizer", "adamw", "--workers", 0,
                               "--log-every", 1, "--warmup", 0, "--no-progress")
    assert trained.returncode == 0, trained.stderr
    assert [record["step"] for record in read_metrics(run)] == [1, 2, 3]

    evaluated = run_in_process(evaluate_cli, "evaluate", "knn", "--checkpoint", run / "last.pt", "--train",
                               labelled_set, "--val", labelled_set, "--k", 3, "--no-progress")
    assert evaluated.returncode == 0, evaluated.stderr
    assert 0 <= json.loads((run / "eval" / "knn" / "results.json").read_text())["top1"] <= 1

    exported = run_in_process(evaluate_cli, "evaluate", "export", "--checkpoint", run / "last.pt",
                              "--out", tmp_path / "encoder.safetensors")
    assert exported.returncode == 0, exported.stderr
    with safe_open(tmp_path / "encoder.safetensors", "pt") as file:
        assert file.metadata()["backbone"] == f"timm:{VIT}"
    plain = timm.create_model(VIT, pretrained=False, num_classes=0)
    plain.load_state_dict(load_file(tmp_path / "encoder.safetensors"))  # strict: every name and shape
    encoder, _ = load_encoder(run / "last.pt")
    images = torch.rand(2, 3, 224, 224)  # the plain model's own size; the trained one takes any
    with torch.no_grad():
        assert torch.equal(plain.eval()(images), encoder(images))


def test_an_unknown_timm_model_is_refused_in_one_sentence(tmp_path, labelled_set):
    result = train_in_process("--data", labelled_set, "--out", tmp_path / "run", "--backbone", "timm:no_such_net")
    assert_clean_failure(result, "timm has no model 'no_such_net'")
