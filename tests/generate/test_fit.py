"""``python -m generate.fit`` on a tiny silhouette folder, and the cgan generator loading its output."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from experiments.silhouettes import write_silhouettes
from generate.fit import REPORT_FILE, STATE_FILE, main as fit_command
from generate.generators.base import GeneratorError, GeneratorOptions
from generate.generators.cgan import CONFIG_FILE, WEIGHTS_FILE, make_cgan
from tests.cli import assert_clean_failure, run_in_process, run_module, tree_digest

CPU = torch.device("cpu")
SMALL = ("--batch-size", 16, "--g-width", 8, "--d-width", 8, "--no-progress")
STEPS = 16


class Payload:
    """Unpickling this would create a file: proof that a weights file was not unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def fit(data: Path, out: Path, steps: int, *extra: object) -> subprocess.CompletedProcess:
    return run_module("generate.fit", "--data", data, "--out", out, "--steps", steps, *SMALL, *extra)


def fitted_ok(data: Path, out: Path, steps: int, *extra: object) -> subprocess.CompletedProcess:
    result = fit(data, out, steps, *extra)
    assert result.returncode == 0, result.stderr
    return result


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2
    assert_clean_failure(result, *fragments)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def fit_in_process(data: Path, out: Path, steps: int, *extra: object) -> subprocess.CompletedProcess:
    """A fit refused before training, run in this process to spare an interpreter start (a
    later option wins over SMALL's)."""
    return run_in_process(fit_command, "python -m generate.fit", "--data", data, "--out", out, "--steps", steps,
                          *SMALL, *extra)


def load(folder: Path):
    return make_cgan(GeneratorOptions(weights=folder, device=CPU, truncation=1.0))


def latents(count: int, seed: int) -> torch.Tensor:
    noise = torch.randn(count, 64, generator=torch.Generator().manual_seed(seed))
    return noise.clamp(-2.0, 2.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("silhouettes")
    write_silhouettes(root, train_per_class=20, test_per_class=0, classes=3)
    return root / "train"


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("fits") / "uninterrupted"
    return out, fitted_ok(data, out, STEPS)


def test_a_fit_writes_a_folder_the_cgan_generator_loads(fitted):
    out, result = fitted
    assert sorted(path.name for path in out.iterdir()) == sorted(
        [CONFIG_FILE, WEIGHTS_FILE, REPORT_FILE, STATE_FILE])
    generator = load(out)
    assert (generator.name, generator.latent_dim, generator.num_classes, generator.resolution) == (
        "cgan", 64, 3, 32)
    assert generator.class_names == ["0-disk", "1-square", "2-triangle"]
    assert generator.weights_sha256 == tree_digest(out)[WEIGHTS_FILE]
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["fit"]["steps"] == STEPS and config["fit"]["data"].endswith("train")

    report = json.loads((out / REPORT_FILE).read_text())
    assert report["steps"] == STEPS
    assert report["diversity"]["ratio"] > 0 and report["diversity"]["real_same_class_l1"] > 0
    assert 0 <= report["recognisability"]["generated_correct_percent"] <= 100
    assert report["recognisability"]["real_heldout_correct_percent"] is not None
    assert "Diversity" in result.stdout and "Recognisability" in result.stdout


def test_two_latents_of_one_class_give_two_images(fitted):
    generator = load(fitted[0])
    images = generator(latents(2, seed=1), torch.tensor([1, 1]))
    assert images.dtype == torch.uint8 and images.shape == (2, 3, 32, 32)
    assert (images[0].float() - images[1].float()).abs().mean() > 1.0
    with pytest.raises(GeneratorError, match="class-conditional"):
        generator(latents(2, seed=1), None)


def test_an_image_does_not_depend_on_its_batch(fitted):
    generator = load(fitted[0])
    z, classes = latents(17, seed=2), torch.arange(17) % 3
    batch = generator(z, classes)
    assert torch.equal(batch[:4], generator(z[:4], classes[:4]))
    assert torch.equal(batch, torch.cat([generator(z[i:i + 1], classes[i:i + 1])
                                         for i in range(17)]))


def test_a_resumed_fit_reaches_the_total_and_matches_an_uninterrupted_one(data, fitted, tmp_path):
    out = tmp_path / "resumed"
    fitted_ok(data, out, STEPS // 2)
    assert json.loads((out / REPORT_FILE).read_text())["steps"] == STEPS // 2
    fitted_ok(data, out, STEPS, "--resume")
    assert json.loads((out / REPORT_FILE).read_text())["steps"] == STEPS
    resumed = torch.load(out / WEIGHTS_FILE, weights_only=True)
    uninterrupted = torch.load(fitted[0] / WEIGHTS_FILE, weights_only=True)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in resumed)


def test_a_folder_holding_a_fit_is_refused_without_resume_or_with_other_settings(data, fitted,
                                                                                  tmp_path):
    out, marker = fitted[0], tmp_path / "unpickled"
    pickled = tmp_path / "pickled"
    shutil.copytree(out, pickled)
    torch.save({"settings": {}, "payload": Payload(marker)}, pickled / STATE_FILE)
    before = tree_digest(out)
    assert_refused(fit_in_process(data, out, STEPS), "already holds a fit", "--resume")
    assert_refused(fit_in_process(data, out, STEPS, "--resume", "--image-size", 64),
                   "other settings", "image_size 32 there, 64 here")
    assert_refused(fit_in_process(data, out, STEPS, "--resume", "--msgan-weight", 1),
                   "other settings", "msgan_weight 0.2 there, 1.0 here")
    assert_refused(fit_in_process(data, tmp_path / "new", STEPS, "--resume"),
                   "no training-state.pt")
    assert_refused(fit_in_process(data, pickled, STEPS, "--resume"), "Cannot read", STATE_FILE)
    assert tree_digest(out) == before
    assert not (tmp_path / "new").exists() and not marker.exists()


@pytest.fixture
def bad_folders(data, tmp_path) -> dict[str, Path]:
    no_classes, no_images = tmp_path / "no-classes", tmp_path / "no-images"
    no_classes.mkdir()
    (no_classes / "loose.png").write_bytes((data / "0-disk" / "00000.png").read_bytes())
    shutil.copytree(data / "0-disk", no_images / "disk")
    (no_images / "empty").mkdir()
    (no_images / "empty" / "broken.png").write_bytes(b"not an image")
    return {"missing": tmp_path / "missing", "no classes": no_classes, "no images": no_images}


@pytest.mark.parametrize("folder, options, fragment", [
    ("missing", (), "is not a folder"),
    ("no classes", (), "holds no class folders"),
    ("no images", (), "empty holds no readable image"),
    ("good", ("--image-size", 48), "--image-size must be 32 or 64"),
    ("good", ("--steps", 0), "--steps must be a positive"),
    ("good", ("--minutes", 0), "--minutes must be a positive"),
    ("good", ("--minutes", "inf"), "--minutes must be a positive, finite"),
])
def test_bad_input_is_refused_in_one_sentence_and_nothing_is_written(folder, options, fragment,
                                                                     data, bad_folders, tmp_path):
    out = tmp_path / "out"
    assert_refused(fit_in_process(bad_folders.get(folder, data), out, STEPS, *options), fragment)
    assert not out.exists()


def test_the_command_line_refuses_in_one_sentence_without_a_traceback(bad_folders, tmp_path):
    out = tmp_path / "out"
    assert_refused(fit(bad_folders["no images"], out, STEPS), "empty holds no readable image")
    assert not out.exists()
    bad_weight = fit_in_process(bad_folders["no images"], out, STEPS, "--msgan-weight", "nan")
    assert bad_weight.returncode == 2 and "Invalid value for '--msgan-weight'" in bad_weight.stderr
    assert "Traceback" not in bad_weight.stderr and not out.exists()


def test_missing_weights_name_the_command_that_makes_them():
    with pytest.raises(GeneratorError, match="python -m generate.fit"):
        make_cgan(GeneratorOptions(weights=None, device=CPU, truncation=1.0))


def test_weights_that_do_not_fit_or_are_pickled_objects_are_refused_in_one_sentence(fitted,
                                                                                     tmp_path):
    def refusal(folder: Path) -> str:
        with pytest.raises(GeneratorError) as error:
            load(folder)
        message = str(error.value)
        assert "\n" not in message and message.endswith(".")
        return message

    folder = tmp_path / "weights"
    shutil.copytree(fitted[0], folder)
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["architecture"]["g_width"] = 12
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    assert "do not fit" in refusal(folder)

    shutil.copy(fitted[0] / CONFIG_FILE, folder / CONFIG_FILE)
    state = torch.load(folder / WEIGHTS_FILE, weights_only=True)
    torch.save({key: value for key, value in state.items() if key != "project.bias"},
               folder / WEIGHTS_FILE)
    assert "lack keys project.bias" in refusal(folder)

    marker = tmp_path / "unpickled"
    torch.save({"project.weight": Payload(marker)}, folder / WEIGHTS_FILE)
    assert "Cannot read the weights" in refusal(folder)
    assert not marker.exists()

    (folder / WEIGHTS_FILE).unlink()
    assert "lacks generator.pt" in refusal(folder)
    assert "does not exist" in refusal(tmp_path / "nowhere")
