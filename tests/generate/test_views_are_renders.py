"""The core promise of a synthetic set: every stored view is the render of its stored latent.

A set is re-rendered from what it records (latents, class, generator, truncation, size, quality) and
compared byte for byte on the same software stack, for each kind of generator the project ships:
the embedded deadleaves, a cgan folder as ``generate.fit`` writes it, and BigGAN-deep's real package
code with random weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from generate.encoding import encode_jpeg
from generate.generators import GeneratorOptions, make_generator
from generate.generators.cgan import CONFIG_FILE, WEIGHTS_FILE, Architecture, ConditionalGenerator, config_document
from shards import open_set
from tests.generate.test_job import generate

CPU = torch.device("cpu")


def random_cgan(folder: Path) -> Path:
    """A cgan folder as ``python -m generate.fit`` writes it, with the untrained network's weights."""
    torch.manual_seed(0)
    architecture = Architecture(num_classes=3, g_width=8)
    folder.mkdir()
    torch.save(ConditionalGenerator(architecture).state_dict(), folder / WEIGHTS_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(config_document(architecture, ["a", "b", "c"], {})))
    return folder


@pytest.mark.parametrize("name", ["deadleaves", "cgan", "biggan-deep-128"])
def test_every_stored_view_is_the_render_of_its_stored_latent(name, tmp_path, tiny_biggan_weights):
    weights = {"deadleaves": None, "cgan": random_cgan(tmp_path / "cgan"), "biggan-deep-128": tiny_biggan_weights}[name]
    generate(tmp_path / "set", "--generator", name, *(["--weights", weights] if weights else []),
             "--n-anchors", 6, "--views", 3, "--sigma", 0.5, "--truncation", 0.7, "--image-size", 32, "--seed", 3)
    shard_set = open_set(str(tmp_path / "set"))
    image = shard_set.manifest["image"]
    generator = make_generator(name, GeneratorOptions(weights=weights, device=CPU, truncation=0.7,
                                                      resolution=image["size"]))
    groups = list(shard_set)
    assert len(groups) == 6
    for group in groups:
        classes = None if group.label is None else torch.full((len(group.latents),), group.label)
        with torch.inference_mode():  # the generator itself, not the job's render: the job is under test
            images = generator(torch.from_numpy(group.latents), classes)
        assert images.shape[-1] == image["size"]  # rendered at the set's size: no resize to redo here
        assert [encode_jpeg(view, image["quality"]) for view in images] == group.views, \
            f"{name}: anchor {group.anchor}'s views are not the renders of its latents"
        assert len(set(group.views)) == len(group.views)  # and the latents make a difference
