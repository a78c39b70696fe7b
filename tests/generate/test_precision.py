"""--precision: fp32 keeps today's bytes, bf16 runs on the CPU and is recorded, fp16 and CUDA-only
options are refused on the CPU in one sentence."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from generate.cli import main as generate_main
from generate.generators import GeneratorError, GeneratorOptions, make_generator
from generate.generators.cgan import Architecture, ConditionalGenerator, config_document
from shards import open_set
from tests.cli import PLUGIN, tree_digest
from tests.generate.plugin_generators import ProjectionGenerator

CPU = torch.device("cpu")
BIGGAN = "biggan-deep-128"  # with the tiny random weights of tests/random_biggan.py, 32 px


def invoke(*args: object):
    return CliRunner().invoke(generate_main, [*map(str, args), "--no-progress"])


def generate(out: Path, *args: object) -> dict:
    result = invoke("--out", out, *args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "manifest.json").read_text())


def refused(out: Path, *args: object) -> str:
    result = invoke("--out", out, *args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output and not out.exists()
    return result.output


def images(location: Path) -> torch.Tensor:
    from torchvision.io import decode_jpeg

    return torch.stack([decode_jpeg(torch.frombuffer(bytearray(view), dtype=torch.uint8))
                        for group in open_set(str(location)) for view in group.views])


def test_fp32_is_the_cpu_default_and_keeps_the_recipe_it_always_had(tmp_path, tiny_biggan_weights):
    common = ["--generator", BIGGAN, "--weights", tiny_biggan_weights, "--n-anchors", 3, "--views", 2]
    default = generate(tmp_path / "default", *common)
    generate(tmp_path / "fp32", *common, "--precision", "fp32")
    assert "precision" not in default["generator"]
    assert tree_digest(tmp_path / "default") == tree_digest(tmp_path / "fp32")


def test_bf16_runs_on_the_cpu_is_recorded_and_stays_close_to_fp32(tmp_path, tiny_biggan_weights):
    common = ["--generator", BIGGAN, "--weights", tiny_biggan_weights, "--n-anchors", 3, "--views", 2]
    full = generate(tmp_path / "fp32", *common)
    half = generate(tmp_path / "bf16", *common, "--precision", "bf16")
    assert half["generator"]["precision"] == "bf16" and half["set_id"] != full["set_id"]
    difference = (images(tmp_path / "bf16").float() - images(tmp_path / "fp32").float()).abs()
    assert difference.max() > 0  # bf16 really ran
    assert difference.mean() < 8  # a few levels of 255 at most, JPEG included
    # a set of another precision is another set: resuming it with fp32 is refused untouched
    before = tree_digest(tmp_path / "bf16")
    output = invoke("--out", tmp_path / "bf16", *common).output
    assert "different shard set" in output and tree_digest(tmp_path / "bf16") == before


def test_fp16_on_the_cpu_is_refused_in_one_sentence(tmp_path):
    output = refused(tmp_path / "set", "--n-anchors", 2, "--precision", "fp16")
    assert "fp16 needs a CUDA device" in output


@pytest.mark.parametrize("flags", [["--channels-last"], ["--cudnn-benchmark"], ["--compile"],
                                   ["--channels-last", "--compile"]])
def test_cuda_speed_options_are_refused_on_the_cpu(tmp_path, flags):
    output = refused(tmp_path / "set", "--n-anchors", 2, "--device", "cpu", *flags)
    assert "CUDA generation only" in output and all(flag in output for flag in flags)


def test_a_generator_that_cannot_render_the_asked_precision_is_refused(tmp_path):
    assert "renders in fp32" in refused(tmp_path / "a", "--n-anchors", 2, "--precision", "bf16")
    output = refused(tmp_path / "b", "--n-anchors", 2, "--generator", f"{PLUGIN}:make_conditional",
                     "--precision", "bf16")
    assert "renders in fp32, not in the bf16" in output


class HalfPrecisionPlugIn(ProjectionGenerator):
    """A plug-in that honours options.precision and says so."""

    def __init__(self, precision: str | None):
        super().__init__(num_classes=3)
        self.precision = precision


def make_honouring(options: GeneratorOptions) -> HalfPrecisionPlugIn:
    return HalfPrecisionPlugIn(options.precision)


def make_bad_precision(options: GeneratorOptions) -> HalfPrecisionPlugIn:
    return HalfPrecisionPlugIn("fp8")


def test_a_plugin_that_renders_the_asked_precision_has_it_recorded(tmp_path):
    this = "tests.generate.test_precision"
    manifest = generate(tmp_path / "set", "--generator", f"{this}:make_honouring", "--n-anchors", 2,
                        "--precision", "bf16")
    assert manifest["generator"]["precision"] == "bf16"
    assert "precision among fp32, bf16, fp16" in refused(
        tmp_path / "bad", "--generator", f"{this}:make_bad_precision", "--n-anchors", 2)


def random_cgan(folder: Path) -> Path:
    architecture = Architecture(num_classes=3, g_width=8)
    torch.manual_seed(0)
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config_document(architecture, ["a", "b", "c"], {})))
    torch.save(ConditionalGenerator(architecture).state_dict(), folder / "generator.pt")
    return folder


def test_cgan_renders_bf16_close_to_its_float64_reference(tmp_path):
    weights = random_cgan(tmp_path / "cgan")
    latents = torch.randn(6, 64, generator=torch.Generator().manual_seed(1)).clamp(-2, 2)
    classes = torch.tensor([0, 1, 2, 0, 1, 2])
    outputs = {}
    for precision in ("fp32", "bf16"):
        generator = make_generator("cgan", GeneratorOptions(weights, CPU, 1.0, precision=precision))
        assert generator.precision == precision
        outputs[precision] = generator(latents, classes).float()
    difference = (outputs["bf16"] - outputs["fp32"]).abs()
    assert 0 < difference.max() and difference.mean() < 4


def test_fp16_is_refused_before_any_weights_are_read(tmp_path):
    with pytest.raises(GeneratorError, match="fp16 needs a CUDA device"):
        make_generator("cgan", GeneratorOptions(tmp_path / "missing", CPU, 1.0, precision="fp16"))
    assert not os.path.exists(tmp_path / "missing")
