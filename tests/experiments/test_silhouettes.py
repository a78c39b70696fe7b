"""The silhouette ImageFolder: deterministic in its seed, balanced, recognisable, a careful CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from experiments.silhouettes import class_names, main, write_silhouettes
from tests.cli import assert_clean_failure, run_module


def png_bytes(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*.png"))}


def pixels(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Grey levels [N, H*W], each image standardised, and class indices [N]."""
    rows, labels = [], []
    for label, class_folder in enumerate(sorted(folder.iterdir())):
        for path in sorted(class_folder.iterdir()):
            grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64).ravel()
            rows.append((grey - grey.mean()) / (grey.std() + 1e-6))
            labels.append(label)
    return np.stack(rows), np.array(labels)


def test_the_same_seed_gives_the_same_files_and_another_seed_other_images(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        write_silhouettes(tmp_path / name, train_per_class=3, test_per_class=2, size=16, classes=4,
                          seed=seed)
    first, again, other = (png_bytes(tmp_path / name) for name in "abc")
    assert first == again
    assert first.keys() == other.keys() and all(first[key] != other[key] for key in first)


def test_every_class_has_its_count_of_rgb_images_under_a_readable_name(tmp_path):
    write_silhouettes(tmp_path, train_per_class=4, test_per_class=2, size=24)
    assert class_names()[:3] == ["0-disk", "1-square", "2-triangle"]
    assert len(set(class_names())) == 10
    for split, count in (("train", 4), ("test", 2)):
        folders = sorted((tmp_path / split).iterdir())
        assert [folder.name for folder in folders] == class_names()
        for folder in folders:
            assert sorted(path.name for path in folder.iterdir()) == [
                f"{index:05d}.png" for index in range(count)]
    with Image.open(tmp_path / "train" / "9-diamond" / "00003.png") as image:
        assert image.mode == "RGB" and image.size == (24, 24)
    assert len(set(png_bytes(tmp_path).values())) == 10 * 6  # no two images alike


def test_classes_are_recognisable_but_not_trivially(tmp_path):
    write_silhouettes(tmp_path, train_per_class=30, test_per_class=10, size=32)
    train, train_labels = pixels(tmp_path / "train")
    test, test_labels = pixels(tmp_path / "test")
    distances = ((test[:, None, :] - train[None, :, :]) ** 2).sum(axis=2)
    nearest = train_labels[np.argsort(distances, axis=1)[:, :5]]
    predicted = np.array([np.bincount(row, minlength=10).argmax() for row in nearest])
    accuracy = (predicted == test_labels).mean()
    assert 0.3 < accuracy < 0.98  # far above chance (0.1), yet pixels alone do not solve it


def test_the_command_writes_the_folder_and_refuses_a_non_empty_one(tmp_path):
    out = tmp_path / "silhouettes"
    result = run_module("experiments.silhouettes", "--out", out, "--train-per-class", 2,
                        "--test-per-class", 1, "--size", 16, "--classes", 3)
    assert result.returncode == 0, result.stderr
    assert len(list(out.glob("train/*/*.png"))) == 6 and len(list(out.glob("test/*/*.png"))) == 3
    before = png_bytes(out)
    refused = run_module("experiments.silhouettes", "--out", out)
    assert refused.returncode == 2
    assert_clean_failure(refused, "not an empty folder")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert png_bytes(out) == before


def test_help_shows_the_defaults():
    result = CliRunner().invoke(main, ["-h"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # help wraps wherever its width says
    assert "[default: 800]" in text and "[default: 200]" in text
