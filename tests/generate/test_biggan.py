"""BigGAN-deep loading: real package code, tiny random weights saved like the released ones."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from pytorch_pretrained_biggan import BigGAN, BigGANConfig, file_utils
from pytorch_pretrained_biggan.model import PRETRAINED_CONFIG_ARCHIVE_MAP, PRETRAINED_MODEL_ARCHIVE_MAP

from generate.generators import GeneratorError, GeneratorOptions, make_generator
from tests.random_biggan import TINY_BIGGAN_CONFIG

CPU = torch.device("cpu")
NAME = "biggan-deep-128"


def options(weights: Path | None, truncation: float = 0.5) -> GeneratorOptions:
    return GeneratorOptions(weights=weights, device=CPU, truncation=truncation)


def latents(count: int, truncation: float = 0.5) -> torch.Tensor:
    noise = torch.randn(count, TINY_BIGGAN_CONFIG["z_dim"], generator=torch.Generator().manual_seed(7))
    return noise.clamp(-2.0, 2.0) * truncation


def assert_one_sentence(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.endswith(".") and message[0].isupper()
    for fragment in fragments:
        assert fragment in message


@pytest.fixture(autouse=True)
def empty_cache_and_no_network(tmp_path, monkeypatch):
    """Point the package's cache at an empty folder and its downloads at a closed local port."""
    cache = tmp_path / "biggan-cache"
    cache.mkdir()
    monkeypatch.setattr(file_utils, "PYTORCH_PRETRAINED_BIGGAN_CACHE", cache)
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    return cache


def test_loads_from_a_weights_folder_and_makes_images(tiny_biggan_weights):
    generator = make_generator(NAME, options(tiny_biggan_weights))
    assert (generator.name, generator.latent_dim, generator.num_classes, generator.resolution) == (
        NAME, 128, 1000, 32)
    assert generator.class_names[:2] == ["tench", "goldfish"] and len(generator.class_names) == 1000
    expected_sha = hashlib.sha256((tiny_biggan_weights / "pytorch_model.bin").read_bytes()).hexdigest()
    assert generator.weights_sha256 == expected_sha

    z = latents(4)
    images = generator(z, torch.tensor([0, 1, 500, 999]))
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 32, 32)
    assert images.float().std() > 5  # not a flat or saturated image
    other_classes = generator(z, torch.tensor([3, 4, 5, 6]))
    assert not torch.equal(images, other_classes)
    assert torch.equal(images, generator(z, torch.tensor([0, 1, 500, 999])))


def test_removing_spectral_norm_leaves_outputs_bit_identical(tiny_biggan_weights):
    config = BigGANConfig.from_json_file(str(tiny_biggan_weights / "config.json"))
    reference = BigGAN(config)
    state_dict = torch.load(tiny_biggan_weights / "pytorch_model.bin", map_location="cpu",
                            weights_only=True)
    reference.load_state_dict(state_dict)
    reference.eval()
    generator = make_generator(NAME, options(tiny_biggan_weights))
    assert not any(hasattr(module, "weight_orig") for module in generator.model.modules())
    assert any(hasattr(module, "weight_orig") for module in reference.modules())

    z = latents(3)
    one_hot = torch.nn.functional.one_hot(torch.tensor([1, 2, 3]), 1000).float()
    with torch.inference_mode():
        expected = reference(z, one_hot, 0.5)
        folded = generator.model(z, one_hot, 0.5)
    assert torch.isfinite(expected).all()
    assert torch.equal(folded, expected)


def copy_weights(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


def remove_a_key(folder: Path) -> None:
    state_dict = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state_dict["generator.conv_to_rgb.weight_orig"]
    torch.save(state_dict, folder / "pytorch_model.bin")


def add_a_key(folder: Path) -> None:
    state_dict = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state_dict["generator.extra.weight"] = torch.zeros(3)
    torch.save(state_dict, folder / "pytorch_model.bin")


def corrupt_the_weights(folder: Path) -> None:
    data = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 2])


def widen_the_config(folder: Path) -> None:
    (folder / "config.json").write_text(json.dumps({**TINY_BIGGAN_CONFIG, "channel_width": 16}))


def misstate_the_size(folder: Path) -> None:
    (folder / "config.json").write_text(json.dumps({**TINY_BIGGAN_CONFIG, "output_dim": 128}))


@pytest.mark.parametrize("damage, fragments", [
    (lambda folder: shutil.rmtree(folder), ["does not exist"]),
    (lambda folder: (folder / "config.json").unlink(), ["lacks config.json"]),
    (lambda folder: (folder / "pytorch_model.bin").unlink(), ["lacks pytorch_model.bin"]),
    (lambda folder: (folder / "config.json").write_text("{not json"), ["Cannot read the BigGAN config"]),
    (lambda folder: (folder / "config.json").write_text("[1, 2]"), ["Cannot read the BigGAN config"]),
    (remove_a_key, ["lack keys", "generator.conv_to_rgb.weight_orig"]),
    (add_a_key, ["unexpected keys", "generator.extra.weight"]),
    (corrupt_the_weights, ["Cannot read the BigGAN weights"]),
    (widen_the_config, ["do not fit the config"]),
    (misstate_the_size, ["output_dim 128", "32-pixel"]),
], ids=["no-folder", "no-config", "no-weights", "bad-config", "config-not-object", "missing-key",
        "extra-key", "corrupt", "wrong-shapes", "wrong-size"])
def test_a_bad_weights_folder_gets_one_sentence(tiny_biggan_weights, tmp_path, damage, fragments):
    folder = copy_weights(tiny_biggan_weights, tmp_path / "weights")
    damage(folder)
    with pytest.raises(GeneratorError) as error:
        make_generator(NAME, options(folder))
    assert_one_sentence(error, *fragments)


def test_without_weights_or_cache_or_network_it_says_where_to_put_them(empty_cache_and_no_network):
    started = time.monotonic()
    with pytest.raises(GeneratorError) as error:
        make_generator(NAME, options(None))
    assert time.monotonic() - started < 5
    assert_one_sentence(error, PRETRAINED_CONFIG_ARCHIVE_MAP[NAME],
                        PRETRAINED_MODEL_ARCHIVE_MAP[NAME], "--weights DIR",
                        str(empty_cache_and_no_network))


def test_without_weights_it_uses_the_packages_cache(tiny_biggan_weights, empty_cache_and_no_network):
    # The package names a cached file sha256(url).sha256(etag); we cannot ask for the etag offline.
    for url, source in ((PRETRAINED_CONFIG_ARCHIVE_MAP[NAME], "config.json"),
                        (PRETRAINED_MODEL_ARCHIVE_MAP[NAME], "pytorch_model.bin")):
        cached = empty_cache_and_no_network / file_utils.url_to_filename(url, etag='"abc"')
        shutil.copy(tiny_biggan_weights / source, cached)
        (cached.parent / f"{cached.name}.json").write_text(json.dumps({"url": url, "etag": '"abc"'}))
    generator = make_generator(NAME, options(None))
    from_folder = make_generator(NAME, options(tiny_biggan_weights))
    assert generator.weights_sha256 == from_folder.weights_sha256
    z, classes = latents(2), torch.tensor([10, 20])
    assert torch.equal(generator(z, classes), from_folder(z, classes))


@pytest.mark.parametrize("truncation", [0.0, 1.5])
def test_truncation_outside_the_models_range_is_refused(tiny_biggan_weights, truncation):
    with pytest.raises(GeneratorError) as error:
        make_generator(NAME, options(tiny_biggan_weights, truncation))
    assert_one_sentence(error, "truncation")
