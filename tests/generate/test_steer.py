"""``python -m generate.steer``: walks fitted to imitate transforms, PCA directions, refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from generate.generators import GeneratorOptions, make_generator
from generate.generators.deadleaves import DeadLeaves
from generate.generators.cgan import (CONFIG_FILE, WEIGHTS_FILE, Architecture, ConditionalGenerator,
                                      config_document)
from generate.steer import main as steer_main
from generate.walks import load_walks
from tests.cli import PLUGIN

BLOB = "tests.generate.steer_plugins:make_blob"
CPU = torch.device("cpu")
QUICK = ("--no-progress", "--device", "cpu", "--batch-size", 16, "--eval-samples", 32)


def steer(out: Path, *args: object) -> str:
    """Run ``python -m generate.steer`` in this process (fast) and require success."""
    result = CliRunner().invoke(steer_main, ["--out", str(out), *QUICK, *map(str, args)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def refuse(out: Path, *args: object) -> str:
    result = CliRunner().invoke(steer_main, ["--out", str(out), *QUICK, *map(str, args)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    return result.output


@pytest.fixture(scope="module")
def cgan_weights(tmp_path_factory) -> Path:
    """A cgan folder with random weights, as ``python -m generate.fit`` lays it out."""
    folder = tmp_path_factory.mktemp("cgan")
    architecture = Architecture(num_classes=3, g_width=8, d_width=8)
    torch.manual_seed(0)
    torch.save(ConditionalGenerator(architecture).state_dict(), folder / WEIGHTS_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(config_document(architecture, ["a", "b", "c"], {})))
    return folder


def test_a_fitted_walk_imitates_its_transform_far_better_than_a_random_direction(tmp_path):
    output = steer(tmp_path / "walks.pt", "--generator", BLOB, "--transforms", "shiftx,color",
                   "--range", "shiftx=-0.2:0.2", "--samples", 640, "--lr", 0.05)

    walks = load_walks(tmp_path / "walks.pt")  # weights_only=True inside
    assert walks.names == ["shiftx", "color.red", "color.green", "color.blue"]
    assert walks.method == "fit" and walks.document["transforms"] == ["shiftx", "color"]
    assert walks.ranges == [(-0.2, 0.2)] + [(-0.25, 0.25)] * 3
    assert walks.generator == {"name": BLOB, "weights_sha256": "blob-weights", "latent_dim": 8,
                               "num_classes": 3}
    settings = walks.document["settings"]
    assert (settings["lr"], settings["batch_size"], settings["samples"]) == (0.05, 16, 640)
    shift = walks.document["evaluation"]["shiftx"]
    assert shift["fitted"] < 0.2 * shift["random_direction"] and shift["fitted"] < 0.2 * shift["no_walk"]
    colour = walks.document["evaluation"]["color"]
    assert colour["fitted"] < 0.8 * colour["random_direction"]
    # The blob's centre moves with latent 0: a shift of the whole side is 1 / 0.15 along it.
    direction = walks.directions[0]
    assert abs(direction[0]) > 0.9 * (direction ** 2).sum() ** 0.5
    assert 0.7 / 0.15 < direction[0] < 1.3 / 0.15
    assert "random direction" in output and "shiftx" in output


def test_deadleaves_through_its_camera_has_a_zoom_and_a_roll_that_walks_find(tmp_path):
    steer(tmp_path / "walks.pt", "--generator", "deadleaves-camera", "--image-size", 16,
          "--transforms", "zoom,rotate", "--samples", 640, "--lr", 0.05)

    walks = load_walks(tmp_path / "walks.pt")
    camera = DeadLeaves(16, CPU, camera=True).camera  # [latent_dim, 4]: zoom, shift x, shift y, roll
    for row, (name, column) in enumerate([("zoom", 0), ("rotate", 3)]):
        figures = walks.document["evaluation"][name]
        assert figures["fitted"] < 0.7 * figures["no_walk"] and figures["fitted"] < 0.7 * figures["random_direction"]
        direction = torch.as_tensor(walks.directions[row], dtype=torch.float64)
        # Mostly along the camera's own direction (a random direction's cosine is about 1 / sqrt(128)).
        assert abs(direction @ camera[:, column]) > 0.5 * direction.norm()


def test_a_resumed_fit_ends_with_the_walks_of_an_uninterrupted_one(tmp_path):
    common = ["--generator", BLOB, "--transforms", "shifty,zoom", "--lr", 0.05, "--seed", 3]
    steer(tmp_path / "whole.pt", *common, "--samples", 96)
    steer(tmp_path / "part.pt", *common, "--samples", 48)
    assert refuse(tmp_path / "part.pt", *common, "--samples", 96).count("--resume")
    steer(tmp_path / "part.pt", *common, "--samples", 96, "--resume")

    whole, resumed = load_walks(tmp_path / "whole.pt"), load_walks(tmp_path / "part.pt")
    assert torch.equal(whole.document["directions"], resumed.document["directions"])
    assert whole.document["evaluation"] == resumed.document["evaluation"]
    assert resumed.document["settings"]["samples"] == 96


def test_deadleaves_renders_float_images_that_quantise_to_its_images_and_carry_gradients():
    generator = make_generator("deadleaves", GeneratorOptions(None, CPU, 1.0, resolution=16))
    latents = torch.randn(6, 128).clamp(-2, 2).requires_grad_(True)
    classes = torch.arange(6)

    images = generator.render_float(latents, classes)

    assert images.dtype == torch.float32 and 0 <= images.min() and images.max() <= 1
    assert torch.equal((images.detach() * 255).round().to(torch.uint8), generator(latents.detach(), classes))
    images.mean().backward()
    assert latents.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["deadleaves", "cgan", "biggan-deep-128"])
def test_walks_fit_on_every_built_in_generator(tmp_path, name, cgan_weights, tiny_biggan_weights):
    weights = {"cgan": cgan_weights, "biggan-deep-128": tiny_biggan_weights}.get(name)
    extra = ["--weights", weights] if weights else ["--image-size", 16]
    steer(tmp_path / "walks.pt", "--generator", name, *extra, "--transforms", "zoom,color",
          "--samples", 32, "--eval-samples", 16)

    walks = load_walks(tmp_path / "walks.pt")
    generator = make_generator(name, GeneratorOptions(weights, CPU, 1.0))
    assert walks.generator["name"] == name
    assert walks.generator["weights_sha256"] == getattr(generator, "weights_sha256", None)
    assert walks.document["directions"].shape == (4, generator.latent_dim)
    assert torch.isfinite(walks.document["directions"]).all()


@pytest.mark.parametrize("name, layer", [("deadleaves", "mapping"), ("cgan", "project"),
                                         ("biggan-deep-128", "generator.gen_z"),
                                         (f"{PLUGIN}:make_conditional", "image at 16 px")])
def test_pca_finds_unit_latent_directions_of_an_early_layer(tmp_path, name, layer, cgan_weights,
                                                            tiny_biggan_weights):
    weights = {"cgan": cgan_weights, "biggan-deep-128": tiny_biggan_weights}.get(name)
    output = steer(tmp_path / "pca.pt", "--generator", name, *(["--weights", weights] if weights else []),
                   "--method", "pca", "--samples", 256, "--components", 4)

    walks = load_walks(tmp_path / "pca.pt")
    assert walks.method == "pca" and walks.names == ["pc0", "pc1", "pc2", "pc3"]
    norms = walks.document["directions"].norm(dim=1)
    assert torch.allclose(norms, torch.ones(4), atol=1e-5)
    assert all(low == -high and 0.5 < high < 4 for low, high in walks.ranges)
    figures = walks.document["evaluation"]
    assert figures["layer"] == layer and figures["explained_variance_ratio"][0] > 0
    assert figures["explained_variance_ratio"] == sorted(figures["explained_variance_ratio"], reverse=True)
    assert layer in output


@pytest.mark.parametrize("generator, fragment", [
    (f"{PLUGIN}:make_conditional", "has no differentiable output, so walks cannot be fitted"),
    ("tests.generate.steer_plugins:make_detached_blob", "do not depend differentiably"),
    ("tests.generate.steer_plugins:make_raising_blob", "failed in render_float (RuntimeError: no gradients"),
], ids=["no float output", "detached output", "raising render_float"])
def test_a_generator_that_cannot_be_differentiated_is_refused_in_one_sentence(tmp_path, generator, fragment):
    output = refuse(tmp_path / "walks" / "w.pt", "--generator", generator, "--samples", 16)
    assert fragment in output
    assert not (tmp_path / "walks").exists()


BAD_INPUT = {
    "unknown transform": (["--transforms", "zoom,blur"], "Unknown transform 'blur'"),
    "repeated transform": (["--transforms", "zoom,zoom"], "named twice"),
    "inverted range": (["--transforms", "zoom", "--range", "zoom=1:-1"], "is inverted (1:-1)"),
    "empty range": (["--transforms", "zoom", "--range", "zoom=0.5:0.5"], "is empty (0.5:0.5)"),
    "range of another transform": (["--transforms", "zoom", "--range", "rotate=-5:5"], "'rotate'"),
    "range not NAME=LOW:HIGH": (["--transforms", "zoom", "--range", "zoom=1"], "NAME=LOW:HIGH"),
    "range not numbers": (["--transforms", "zoom", "--range", "zoom=a:b"], "numbers"),
    "zero samples": (["--samples", "0"], "--samples"),
    "negative minutes": (["--minutes", "-1"], "--minutes"),
    "pca with transforms": (["--method", "pca", "--transforms", "zoom"], "--method pca takes no"),
    "resume without a state": (["--resume"], "to resume from"),
    "weights for deadleaves": (["--generator", "deadleaves", "--weights", "/tmp"], "takes no weights"),
    "classes on unconditional": (["--generator", f"{PLUGIN}:make_unconditional", "--method", "pca",
                                  "--classes", "1"], "unconditional"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_one_sentence_and_writes_nothing(tmp_path, case):
    flags, fragment = BAD_INPUT[case]
    generator = [] if "--generator" in flags else ["--generator", BLOB]
    output = refuse(tmp_path / "walks" / "w.pt", *generator, *flags)
    assert fragment in output
    assert not (tmp_path / "walks").exists() or os.listdir(tmp_path / "walks") == []


def test_an_out_that_already_holds_walks_is_refused_untouched(tmp_path):
    out = tmp_path / "walks.pt"
    out.write_bytes(b"someone's walks")
    assert "already exists" in refuse(out, "--generator", BLOB, "--method", "pca")
    assert out.read_bytes() == b"someone's walks"
