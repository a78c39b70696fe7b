"""Diffusion generators: a tiny random-weight DiT and VAE saved in the diffusers layout and loaded
through the same path as real weights (``from_pretrained`` of a local folder, safetensors only)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from generate.cli import main as generate_main
from generate.render import settings_from_options
from generate.encoding import encode_jpeg
from generate.verify import main as verify_main
from generate.generators import GeneratorError, GeneratorOptions, make_generator
from shards import open_set
from shards.verify import verify_set

CPU = torch.device("cpu")
STEPS = 2


@pytest.fixture(scope="module")
def tiny_dit(tmp_path_factory) -> Path:
    """A 5-class DiT on 4x8x8 latents with a 16-pixel VAE, as DiTPipeline.save_pretrained writes it."""
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(0)
    transformer = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                        num_layers=1, sample_size=8, patch_size=2, num_embeds_ada_norm=5,
                                        norm_num_groups=4)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), latent_channels=4,
                        norm_num_groups=4, layers_per_block=1, sample_size=16)
    folder = tmp_path_factory.mktemp("diffusion") / "tiny-dit"
    DiTPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler()).save_pretrained(folder)
    return folder


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
