"""The GPU fast path, as far as a CPU shows it: the trimmed last convolution, --batch-size auto,
the JPEG encoder choice, host transfers, and out-of-memory as one sentence."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from generate.batch_size import CPU_BATCH_SIZE, auto_batch_size, fastest_batch_size, images_per_second
from generate.cli import main as generate_main
from generate.encoding import EncoderError, JpegEncoder, choose_encoder, encode_on_gpu, to_host
from generate.generators import GeneratorOptions, make_generator
from generate.generators.biggan import make_biggan
from generate.job import OutOfMemory, render, to_device
from tests.cli import tree_digest
from tests.generate.plugin_generators import ProjectionGenerator

CPU = torch.device("cpu")
THIS = "tests.generate.test_fast_path"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_trimmed_last_convolution_gives_the_full_models_output(tiny_biggan_weights):
    options = GeneratorOptions(tiny_biggan_weights, CPU, 0.7)
    full = make_biggan("biggan-deep-128", options, trim_output=False)
    trimmed = make_biggan("biggan-deep-128", options, trim_output=True)
    assert full.model.generator.conv_to_rgb.out_channels == 8  # channel_width of the tiny config
    assert trimmed.model.generator.conv_to_rgb.out_channels == 3
    latents = torch.randn(5, 128, generator=torch.Generator().manual_seed(3)).clamp(-2, 2) * 0.7
    one_hot = torch.nn.functional.one_hot(torch.tensor([0, 9, 99, 500, 999]), 1000).float()
    with torch.inference_mode():
        assert torch.equal(trimmed.model(latents, one_hot, 0.7), full.model(latents, one_hot, 0.7))


def test_the_cpu_default_trims(tiny_biggan_weights):
    generator = make_generator("biggan-deep-128", GeneratorOptions(tiny_biggan_weights, CPU, 1.0))
    assert generator.model.generator.conv_to_rgb.out_channels == 3


def generate(*args: object):
    return CliRunner().invoke(generate_main, [*map(str, args), "--no-progress"])


def test_batch_size_auto_gives_the_set_a_fixed_batch_size_gives(tmp_path):
    common = ["--n-anchors", 5, "--views", 3, "--image-size", 16, "--groups-per-shard", 3]
    auto = generate("--out", tmp_path / "auto", *common, "--batch-size", "auto")
    assert auto.exit_code == 0, auto.output
    assert f"--batch-size auto: {CPU_BATCH_SIZE} images per batch" in auto.output
    fixed = generate("--out", tmp_path / "fixed", *common, "--batch-size", 2)
    assert fixed.exit_code == 0, fixed.output
    assert tree_digest(tmp_path / "auto") == tree_digest(tmp_path / "fixed")


class RunsOutOfMemory(ProjectionGenerator):
    """Renders up to ``limit`` images at once and runs out of memory above, as a full GPU does."""

    def __init__(self, limit: int):
        super().__init__(num_classes=2)
        self.limit = limit

    def __call__(self, latents: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        if len(latents) > self.limit:
            raise torch.OutOfMemoryError(f"cannot hold {len(latents)} images")
        return super().__call__(latents, classes)


def make_small_memory(options: GeneratorOptions) -> RunsOutOfMemory:
    return RunsOutOfMemory(limit=4)


def test_the_batch_size_search_stops_at_the_first_size_that_does_not_fit():
    generator = make_generator(f"{THIS}:make_small_memory", GeneratorOptions(None, CPU, 1.0))
    tried = []

    def rate(size: int) -> float:
        tried.append(size)
        images_per_second(generator, 32, size)  # really renders, and raises above 4 images
        return float(size)  # so that every size that fits is faster than the last

    assert fastest_batch_size(rate, (1, 2, 4, 8, 16)) == 4 and tried == [1, 2, 4, 8]
    assert auto_batch_size(generator, 32) == CPU_BATCH_SIZE  # on the CPU nothing is measured


def test_the_batch_size_search_stops_when_a_size_is_no_faster():
    rates = {8: 100.0, 16: 180.0, 32: 181.0, 64: 500.0}
    assert fastest_batch_size(rates.__getitem__, (8, 16, 32, 64)) == 16


def test_running_out_of_memory_is_one_sentence_naming_the_batch_size(tmp_path):
    result = generate("--generator", f"{THIS}:make_small_memory", "--n-anchors", 4, "--views", 2,
                      "--batch-size", 8, "--out", tmp_path / "set")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "A batch of 8 images does not fit in the memory of the cpu device" in result.output
    assert not [path for path in (tmp_path / "set").iterdir() if path.name.startswith("shard-")]
    with pytest.raises(OutOfMemory):
        render(RunsOutOfMemory(1), np.zeros((2, 16), np.float32), np.zeros(2, np.int64), 32)


def test_the_encoder_follows_the_device_and_cuda_encoding_is_refused_on_the_cpu():
    assert choose_encoder("auto", CPU) == "cpu" and choose_encoder("cpu", CPU) == "cpu"
    assert choose_encoder("auto", torch.device("cuda", 0)) == "cuda"
    with pytest.raises(EncoderError, match="needs --device cuda"):
        choose_encoder("cuda", CPU)


def test_host_transfers_on_the_cpu_hand_back_the_same_tensors():
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    assert to_host(images)() is images
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert torch.equal(to_device(array, CPU), torch.from_numpy(array))


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def random_batch(device: torch.device) -> torch.Tensor:
    smooth = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    images = torch.nn.functional.interpolate(smooth, size=64, mode="bilinear") * 255
    return images.round().to(torch.uint8).to(device)


def test_the_cpu_encoder_makes_jpegs_pil_decodes_at_the_asked_quality():
    from concurrent.futures import ThreadPoolExecutor

    images = random_batch(CPU)
    with ThreadPoolExecutor(2) as pool:
        views = {quality: JpegEncoder("cpu", quality, pool).start(images)() for quality in (50, 95)}
    for quality, encoded in views.items():
        assert len(encoded) == 4 and all(data[:2] == b"\xff\xd8" for data in encoded)
        error = np.abs(decoded(encoded[0]).astype(int) - images[0].permute(1, 2, 0).numpy()).mean()
        assert error < (4 if quality == 95 else 8)
    assert sum(map(len, views[50])) < sum(map(len, views[95]))


@needs_cuda
def test_the_gpu_encoder_makes_jpegs_pil_decodes_close_to_the_cpu_encoders():
    images = random_batch(torch.device("cuda"))
    on_gpu = encode_on_gpu(images, 95)
    for data, image in zip(on_gpu, images.cpu()):
        assert np.abs(decoded(data).astype(int) - image.permute(1, 2, 0).numpy()).mean() < 4


def test_the_gpu_check_runs_every_section_in_smoke_mode_on_the_cpu(tmp_path, tiny_biggan_weights):
    from benchmarks.gpu_check import SECTIONS, SMOKE, run_section, table

    for section in SECTIONS:
        run_section(section, SMOKE, tiny_biggan_weights, tmp_path / "out")
    text = table(tmp_path / "out")
    for row in ("forward fp32", "forward bf16", "forward bf16+trim", "whole job, bf16+trim, cpu JPEG"):
        line = next(line for line in text.splitlines() if line.startswith(f"| {row} "))
        assert float(line.rstrip(" |").rsplit("| ", 1)[1]) > 0, line
    assert "--compile speeds up CUDA generation only" in text  # refused on the CPU, and said why
    assert "| fp32 trim bit-identical; --batch-size auto | True; 64 |" in text
    assert "| convnet-small-16px |" in text
    assert "| set identical made again; at another batch size | True; " in text
