"""Diffusion generators: a tiny random-weight DiT and VAE saved in the diffusers layout and loaded
through the same path as real weights (``from_pretrained`` of a local folder, safetensors only);
gaussian and renoise views, and the GPU check's DiT section at its CPU size."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from generate.cli import main as generate_main
from generate.batch_size import TIMED_BATCHES, images_per_second
from generate.generators.diffusion import PROBE_STEPS
from generate.render import settings_from_options
from generate.encoding import encode_jpeg
from generate.verify import main as verify_main
from generate.generators import GeneratorError, GeneratorOptions, make_generator
from generate.sampling import ViewSpec, sample_latents
from shards import open_set
from shards.cli import cli as shards_cli
from shards.reader import decode_view
from shards.verify import verify_set
from tests.cli import run_in_process
from tests.random_dit import write_random_dit

CPU = torch.device("cpu")
STEPS = 2


@pytest.fixture(scope="module")
def tiny_dit(tmp_path_factory) -> Path:
    """A 5-class DiT on 4x8x8 latents with a 16-pixel VAE, as DiTPipeline.save_pretrained writes it."""
    return write_random_dit(tmp_path_factory.mktemp("diffusion") / "tiny-dit")


def invoke(out: Path, *args: object):
    return CliRunner().invoke(generate_main, ["--out", str(out), "--no-progress", *map(str, args)])


def run(out: Path, *args: object) -> None:
    """8 groups of 3 views in 2 shards, sampled in STEPS steps."""
    result = invoke(out, "--n-anchors", 8, "--views", 3, "--sampling-steps", STEPS, "--groups-per-shard", 4, *args)
    assert result.exit_code == 0, result.output


def generate(out: Path, *args: object) -> dict:
    run(out, *args)
    return json.loads((out / "manifest.json").read_text())


def refused(out: Path, *args: object) -> str:
    result = invoke(out, "--n-anchors", 2, *args)
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    message = result.output.strip()
    assert "Traceback" not in message and "\n" not in message and message.endswith("."), message
    return message


def test_a_set_verifies_records_its_sampler_and_ignores_the_batch_size(tiny_dit, tmp_path):
    small = generate(tmp_path / "a", "--generator", "diffusers", "--weights", tiny_dit, "--batch-size", 2)
    generate(tmp_path / "b", "--generator", "dit-xl-2-256", "--weights", tiny_dit, "--batch-size", 8)
    assert verify_set(tmp_path / "a").intact
    assert small["generator"]["latent_dim"] == 4 * 8 * 8 and small["generator"]["resolution"] == 16
    assert small["generator"]["sampler"] == {"name": "ddim", "eta": 0.0, "steps": STEPS, "guidance": 1.5}
    assert small["view_method"] == {"name": "gaussian", "sigma": 0.2, "preserve_norm": True}
    described = run_in_process(shards_cli, "python -m shards", "info", tmp_path / "a").stdout
    assert f"sampler      ddim, eta 0.0, {STEPS} steps, guidance 1.5\n" in described
    for shard in ("shard-000000.tar", "shard-000001.tar"):
        assert (tmp_path / "a" / shard).read_bytes() == (tmp_path / "b" / shard).read_bytes()
    regenerated = CliRunner().invoke(verify_main, [str(tmp_path / "a"), "--regenerate", "2", "--weights",
                                                   str(tiny_dit), "--device", "cpu"])
    assert regenerated.exit_code == 0 and "2 groups rendered again match" in regenerated.output, regenerated.output


def test_partitions_write_the_bytes_of_one_run(tiny_dit, tmp_path):
    common = ("--generator", "diffusers", "--weights", tiny_dit, "--batch-size", 4)
    whole = generate(tmp_path / "whole", *common)
    run(tmp_path / "parts", *common, "--shard-index", 1, "--num-shards", 2)
    parts = generate(tmp_path / "parts", *common, "--shard-index", 0, "--num-shards", 2)
    assert parts["shards"] == whole["shards"]


@pytest.mark.parametrize("generator, method, asked, kept", [
    ("dit-xl-2-256", "gaussian", None, True), ("diffusers", "gaussian", False, False),
    ("diffusers", "independent", None, False), ("deadleaves", "gaussian", None, False)])
def test_gaussian_views_of_diffusion_noise_keep_its_norm_by_default(generator, method, asked, kept):
    settings = settings_from_options(generator, 8, 3, method, 0.2, None, (), None, asked, 1.0, None, 0, None,
                                     95, 4, None, "unknown", None)
    assert settings.views.preserve_norm is kept


def test_every_stored_view_is_the_render_of_its_stored_latent(tiny_dit, tmp_path):
    generate(tmp_path / "set", "--generator", "diffusers", "--weights", tiny_dit, "--sigma", 0.5, "--guidance", 2)
    shard_set = open_set(str(tmp_path / "set"))
    generator = make_generator("diffusers", GeneratorOptions(weights=tiny_dit, device=CPU, truncation=1.0,
                                                             sampling_steps=STEPS, guidance=2.0))
    for group in shard_set:
        classes = torch.full((len(group.latents),), group.label)
        images = generator(torch.from_numpy(group.latents), classes)
        assert [encode_jpeg(view, shard_set.manifest["image"]["quality"]) for view in images] == group.views
        assert len(set(group.views)) == len(group.views)


def test_like_renders_the_same_bytes_with_the_recorded_sampler(tiny_dit, tmp_path):
    generate(tmp_path / "a", "--generator", "diffusers", "--weights", tiny_dit, "--guidance", 3, "--n-anchors", 4)
    result = invoke(tmp_path / "b", "--like", tmp_path / "a", "--weights", tiny_dit)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "shard-000000.tar").read_bytes() == (tmp_path / "b" / "shard-000000.tar").read_bytes()


def test_bad_input_is_one_sentence(tiny_dit, tmp_path):
    assert "does not exist" in refused(tmp_path / "o1", "--generator", "dit-xl-2-256", "--weights", tmp_path / "no")
    assert "facebook/DiT-XL-2-256" in refused(tmp_path / "o2", "--generator", "dit-xl-2-256")
    no_vae = tmp_path / "no-vae"
    shutil.copytree(tiny_dit, no_vae)
    shutil.rmtree(no_vae / "vae")
    assert "lacks its vae" in refused(tmp_path / "o3", "--generator", "diffusers", "--weights", no_vae)
    (no_vae / "model_index.json").unlink()
    assert "not a diffusers pipeline" in refused(tmp_path / "o4", "--generator", "diffusers", "--weights", no_vae)
    assert "--guidance" in refused(tmp_path / "o5", "--generator", "diffusers", "--weights", tiny_dit,
                                   "--guidance", "nan")
    assert "diffusion sampler" in refused(tmp_path / "o6", "--generator", "deadleaves", "--sampling-steps", 4)


def test_an_unconditional_pixel_space_pipeline_is_a_generator_too(tmp_path):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 8),
                       norm_num_groups=4, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(tmp_path / "ddpm")
    options = GeneratorOptions(weights=tmp_path / "ddpm", device=CPU, truncation=1.0, sampling_steps=STEPS)
    generator = make_generator("diffusers", options)
    assert (generator.latent_dim, generator.num_classes, generator.resolution) == (3 * 8 * 8, 0, 8)
    latents = torch.randn(3, generator.latent_dim)
    images = generator(latents, None)
    assert torch.equal(images, torch.cat([generator(latents[:1], None), generator(latents[1:], None)]))
    with pytest.raises(GeneratorError, match="no null class|has none"):
        make_generator("diffusers", dataclasses.replace(options, guidance=2.0))


def test_renoise_views_verify_and_are_the_same_bytes_at_any_batch_size_and_partition(tiny_dit, tmp_path):
    """The issue's command (16 anchors of 3 views re-noised at strength 0.5; in 4 steps rather than 50, for
    time) at batch size 4, and at 16 in two partitions, the second one resuming after the first."""
    issue = ("--generator", "diffusers", "--weights", tiny_dit, "--n-anchors", 16, "--views", 3, "--view-method",
             "renoise", "--strength", 0.5, "--sampling-steps", 4, "--groups-per-shard", 8)
    for out, batch, partitions in (("a", 4, [()]), ("b", 16, [("--shard-index", 1), ("--shard-index", 0)])):
        for partition in partitions:
            result = invoke(tmp_path / out, *issue, "--batch-size", batch, *partition, "--num-shards", len(partitions))
            assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["shards"] == manifest["shards"]
    assert verify_set(tmp_path / "a").intact
    assert manifest["view_method"] == {"name": "renoise", "strength": 0.5}
    assert manifest["generator"]["sampler"] == {"name": "ddim", "eta": 0.0, "steps": 4, "guidance": 1.5}
    assert all(group.meta["view_method"] == manifest["view_method"] for group in open_set(str(tmp_path / "a")))
    card = (tmp_path / "a" / "README.md").read_text()
    assert ("Sampler: `ddim` with eta 0.0 (0: deterministic), 4 sampling steps and classifier-free guidance "
            "scale 1.5") in card
    assert "Views: `renoise` (strength=0.5)" in card and "SDEdit" in card
    croissant = json.loads((tmp_path / "a" / "croissant.json").read_text())["description"]
    assert "4 sampling steps" in croissant and "`renoise` (strength=0.5)" in croissant
    regenerated = CliRunner().invoke(verify_main, [str(tmp_path / "a"), "--regenerate", "2", "--weights",
                                                   str(tiny_dit), "--device", "cpu"])
    assert regenerated.exit_code == 0 and "2 groups rendered again match" in regenerated.output, regenerated.output


def test_renoise_views_move_further_from_their_anchor_as_the_strength_grows(tiny_dit):
    """In latents and in pixels, up to about the distance between two anchors (which, with random weights,
    views re-noised further than halfway already reach)."""
    generator = make_generator("diffusers", GeneratorOptions(weights=tiny_dit, device=CPU, truncation=1.0,
                                                             sampling_steps=10))
    spec = ViewSpec("renoise", 3, 0.0, 1.0, strength=0.5)  # a view's noise does not depend on the strength
    latents = torch.from_numpy(np.concatenate([sample_latents(0, anchor, generator.latent_dim, spec)
                                               for anchor in range(4)]))
    classes = torch.arange(4).repeat_interleave(3) % generator.num_classes
    anchors = generator(latents[::3], classes[::3])
    latent_distances, pixel_distances = [], []
    for strength in (0.1, 0.2, 0.3, 0.5):
        final = generator.renoised_latents(latents, classes, 3, strength).unflatten(0, (-1, 3))
        images = generator.renoise(latents, classes, 3, strength).unflatten(0, (-1, 3))
        assert torch.equal(images[:, 0], anchors)  # the anchor is the plain sample of its noise
        latent_distances.append(float((final[:, 1:] - final[:, :1]).flatten(2).norm(dim=2).mean()))
        pixel_distances.append(float((images[:, 1:].float() - images[:, :1].float()).abs().mean()))
    apart = float((final[1:, 0] - final[:-1, 0]).flatten(1).norm(dim=1).mean())
    assert 0 < latent_distances[0] < apart / 10 and latent_distances[-1] > apart / 2, (latent_distances, apart)
    assert all(near < far for near, far in zip(latent_distances, latent_distances[1:])), latent_distances
    assert all(near < far for near, far in zip(pixel_distances, pixel_distances[1:])), pixel_distances


def test_batch_size_auto_times_a_short_schedule_and_then_samples_the_whole_one(tiny_dit):
    generator = make_generator("diffusers", GeneratorOptions(weights=tiny_dit, device=CPU, truncation=1.0,
                                                             sampling_steps=10))
    latents = torch.from_numpy(sample_latents(0, 0, generator.latent_dim, ViewSpec("gaussian", 4, 0.2, 1.0)))
    classes = torch.zeros(4, dtype=torch.int64)
    before = generator(latents, classes)
    steps: list[int] = []
    hook = generator.pipeline.denoiser.register_forward_hook(lambda *_: steps.append(1))
    assert images_per_second(generator, generator.resolution, 4) > 0
    timed = len(steps)
    generator(latents, classes)
    hook.remove()
    assert timed == (1 + TIMED_BATCHES) * PROBE_STEPS and len(steps) - timed == 10
    assert torch.equal(generator(latents, classes), before)


@pytest.mark.parametrize("args, fragment", [
    (("--view-method", "renoise", "--strength", 0), "--strength must lie in (0, 1]"),
    (("--view-method", "renoise", "--strength", 1.5), "--strength must lie in (0, 1]"),
    (("--view-method", "renoise", "--strength", "nan"), "--strength must lie in (0, 1]"),
    (("--strength", 0.5), "it needs --view-method renoise"),
    (("--view-method", "renoise", "--preserve-norm"), "--preserve-norm rescales gaussian views"),
    (("--precision", "fp16"), "--precision fp16 needs a CUDA device"),
    (("--compile",), "--compile speeds up CUDA generation only")])
def test_bad_view_and_speed_settings_of_a_diffusion_generator_are_one_sentence(tiny_dit, tmp_path, args, fragment):
    assert fragment in refused(tmp_path / "out", "--generator", "diffusers", "--weights", tiny_dit, *args)


@pytest.mark.parametrize("flag", ["compile", "channels_last"])
def test_gan_speed_options_are_refused_rather_than_ignored_on_cuda_too(tiny_dit, flag):
    from generate.generators.diffusion import make_diffusion

    options = GeneratorOptions(weights=tiny_dit, device=CPU, truncation=1.0, **{flag: True})  # as CUDA passes them
    with pytest.raises(GeneratorError, match="run without --compile and --channels-last"):
        make_diffusion("diffusers", options)


@pytest.mark.parametrize("generator", ["biggan-deep-128", "cgan", "deadleaves"])
def test_renoise_views_are_refused_for_generators_without_a_sampler(generator, tmp_path):
    message = refused(tmp_path / "out", "--generator", generator, "--view-method", "renoise")
    assert "needs a diffusion generator" in message and not (tmp_path / "out").exists()


def test_bf16_renders_a_set_close_to_fp32(tiny_dit, tmp_path):
    """bf16, the default on CUDA, runs on the CPU too: the same latents, images a few levels from fp32's."""
    sets = {}
    for precision in ("fp32", "bf16"):
        generate(tmp_path / precision, "--generator", "diffusers", "--weights", tiny_dit, "--precision", precision,
                 "--n-anchors", 2)
        sets[precision] = list(open_set(str(tmp_path / precision)))
    assert json.loads((tmp_path / "bf16" / "manifest.json").read_text())["generator"]["precision"] == "bf16"
    for full, half in zip(sets["fp32"], sets["bf16"]):
        assert np.array_equal(full.latents, half.latents)
        decoded = [torch.stack([decode_view(view) for view in group.views]).float() for group in (full, half)]
        assert float((decoded[0] - decoded[1]).abs().mean()) < 8


def test_the_gpu_checks_dit_section_runs_at_its_cpu_size(tmp_path):
    from benchmarks.gpu_check import SMOKE, run_section, table

    figures = run_section("dit", SMOKE, tmp_path / "unused", tmp_path / "out")
    assert figures["sampler"] > 0 and figures["job"] > 0 and figures["precision"] == "fp32"
    assert "| whole job, cpu JPEG (job/sampler " in table(tmp_path / "out")
