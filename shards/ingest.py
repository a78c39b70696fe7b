"""Ingesting an ImageFolder of real photos (FOLDER/CLASS/IMAGE) as a shard set of kind "real", K = 1.

The order depends on the folder and the seed alone: files sorted by class folder then path, the
ones that do not decode dropped (decided up front, by the same decoding the writer does), then
permuted with the seed so every shard mixes classes. A group's anchor is its position in that
order, so a rerun resumes with the same anchors and writes byte-identical shards.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from common.files import check_output_path
from common.imagenet import read_class_table
from common.parallel import ordered_map
from shards.limits import IMAGE_PIXELS
from shards.schema import Group, ShardSetError
from shards.card import UNKNOWN, card_facts
from shards.set_writer import SetWriter

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
IN_FLIGHT_PER_WORKER = 4  # images decoded ahead of the writer, per worker thread
MAX_CLASS_LIST_BYTES = 1 << 20  # a --classes file: folder names, one per line


@dataclass(frozen=True)
class SourceImage:
    path: Path
    relative: str  # POSIX path below the ingested folder, as recorded in the set
    label: int


@dataclass
class IngestPlan:
    classes: list[str]
    images: list[SourceImage]  # in anchor order
    skipped: list[str]  # relative paths of files that are not readable images, sorted


@dataclass
class IngestReport:
    location: Path
    set_id: str
    groups: int
    classes: int
    shards_written: int
    shards_kept: int
    skipped: list[str]


def ingest_folder(folder: str | Path, out: str | Path, *, image_size: int, quality: int = 95,
                  groups_per_shard: int = 1000, seed: int = 0, workers: int | None = None,
                  command: list[str] | None = None, progress: bool = False, license: str = UNKNOWN,
                  description: str | None = None, classes: list[str] | None = None) -> IngestReport:
    """Write (or resume writing) the shard set of an ImageFolder (of the class folders ``classes``
    names, or of all); user mistakes raise ShardSetError."""
    _check_options(image_size, quality, groups_per_shard, seed, workers)
    folder, out = Path(folder), Path(out)
    check_output_path(out)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        plan = plan_ingest(folder, image_size, seed, pool, workers, progress, classes)
        check_not_inside(out, folder)
        writer = SetWriter(out, ingest_recipe(plan, image_size, quality, seed, groups_per_shard),
                           extra={"source": str(folder), **card_facts(license, description)})
        encode = partial(encode_image, size=image_size, quality=quality)
        written = _write_shards(plan, writer, encode, pool, workers, progress)
    writer.finish(command or [])
    return IngestReport(location=out, set_id=writer.set_id, groups=len(plan.images),
                        classes=len(plan.classes), shards_written=written,
                        shards_kept=writer.shard_count - written, skipped=plan.skipped)


def _check_options(image_size: int, quality: int, groups_per_shard: int, seed: int,
                   workers: int | None) -> None:
    if image_size < 1:
        raise ShardSetError(f"The image size must be a positive number of pixels, not {image_size}.")
    beyond = IMAGE_PIXELS.exceeded_by(image_size * image_size)
    if beyond:
        raise ShardSetError(f"--image-size {image_size} makes images of {image_size} x {image_size} pixels, "
                            f"{beyond}.")
    if not 1 <= quality <= 100:
        raise ShardSetError(f"The JPEG quality must be between 1 and 100, not {quality}.")
    if groups_per_shard < 1:
        raise ShardSetError(f"Groups per shard must be at least 1, not {groups_per_shard}.")
    if seed < 0:
        raise ShardSetError(f"The seed must be a non-negative integer, not {seed}.")
    if workers is not None and workers < 1:
        raise ShardSetError(f"The number of workers must be at least 1, not {workers}.")


def class_folders(choice: str) -> list[str]:
    """The class folders ``--classes`` names: ``imagenet100`` (the WordNet ids of CMC's ImageNet-100,
    as ImageNet's class folders are named), a file of folder names (one per line, ``#`` starts a
    comment) or names separated by commas."""
    if choice == "imagenet100":
        return [wnid for _, wnid, _ in read_class_table("imagenet100")]
    if Path(choice).is_file():
        names = [line.split("#", 1)[0].strip() for line in _read_class_list(Path(choice)).splitlines()]
    else:
        names = [part.strip() for part in choice.split(",")]
    names = [name for name in names if name]
    if not names:
        raise ShardSetError(f"--classes {choice!r} names no class folder.")
    return names


def _read_class_list(path: Path) -> str:
    """A class list file as text, at most MAX_CLASS_LIST_BYTES of it (ImageNet's 1000 names take 10 kB)."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_CLASS_LIST_BYTES + 1)
    except OSError as error:
        raise ShardSetError(f"--classes {path} cannot be read ({error.strerror}).") from None
    if len(data) > MAX_CLASS_LIST_BYTES:
        raise ShardSetError(f"--classes {path} is longer than {MAX_CLASS_LIST_BYTES:,} bytes, too long for a list of "
                            "class folder names.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ShardSetError(f"--classes {path} is not a text file of class folder names (not UTF-8).") from None


def list_folder(folder: Path, only: list[str] | None = None) -> tuple[list[str], list[SourceImage], list[str]]:
    """Class names (sorted sub-folders, or the sub-folders ``only`` names, each of which must exist),
    candidate images in (class, path) order, and other files.

    Links to folders are followed, each real folder once: a link that leads to a folder already
    read (a loop, or a second way into a class) is refused, since following it would count its
    images twice, possibly under another class. A folder that cannot be read is refused too."""
    if not folder.is_dir():
        raise ShardSetError(f"{folder} is not a folder.")
    try:
        classes = sorted(entry.name for entry in folder.iterdir()
                         if entry.is_dir() and not entry.name.startswith("."))
    except OSError as error:
        _unreadable(error)
    if not classes:
        raise ShardSetError(f"{folder} has no class sub-folders; ingest expects FOLDER/CLASS/IMAGE files.")
    if only is not None:
        missing = sorted(set(only) - set(classes))
        if missing:
            raise ShardSetError(f"{folder} has no folder for {len(missing)} of the {len(set(only))} classes asked "
                                f"for ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); a set "
                                "without them would not be the one asked for.")
        classes = sorted(set(only))
    candidates, others = [], []
    seen: dict[str, Path] = {}
    for label, name in enumerate(classes):
        for path in _files_below(folder / name, seen):
            relative = path.relative_to(folder).as_posix()
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                candidates.append(SourceImage(path, relative, label))
            else:
                others.append(relative)
    return classes, candidates, others


def _unreadable(error: OSError) -> None:
    raise ShardSetError(f"{error.filename} cannot be read ({error.strerror}); fix its permissions or "
                        "move it out of the folder.") from None


def _files_below(directory: Path, seen: dict[str, Path]) -> list[Path]:
    """Every file below a class folder, hidden ones (.DS_Store, .git) left out, sorted by path;
    ``seen`` maps the real path of every folder read so far to the path it was read by."""
    files = []
    for root, folders, names in os.walk(directory, followlinks=True, onerror=_unreadable):
        real = os.path.realpath(root)
        if real in seen:
            raise ShardSetError(f"{root} leads to {seen[real]} again through a link; ingest reads each "
                                "folder once, so remove the link or copy the images.")
        seen[real] = Path(root)
        folders[:] = [name for name in folders if not name.startswith(".")]
        files.extend(Path(root) / name for name in names if not name.startswith("."))
    return sorted(files, key=lambda path: path.relative_to(directory).as_posix())


def plan_ingest(folder: Path, image_size: int, seed: int, pool: Executor, workers: int,
                progress: bool = False, only: list[str] | None = None) -> IngestPlan:
    """Which files become groups, and in which order (the anchor order)."""
    classes, candidates, others = list_folder(folder, only)
    check = partial(_decodes, size=image_size)
    readable = list(tqdm(ordered_map(pool, check, [image.path for image in candidates],
                                     IN_FLIGHT_PER_WORKER * workers),
                         total=len(candidates), desc="check", unit="img", disable=not progress))
    images = [image for image, ok in zip(candidates, readable) if ok]
    skipped = sorted(others + [image.relative for image, ok in zip(candidates, readable) if not ok])
    if not images:
        raise ShardSetError(f"{folder} holds no readable image in its class folders "
                            f"({len(skipped)} files skipped).")
    order = np.random.default_rng(seed).permutation(len(images))
    return IngestPlan(classes=classes, images=[images[i] for i in order], skipped=skipped)


def square_rgb(path: Path, size: int) -> Image.Image:
    """The image upright (EXIF orientation), in RGB, its shorter side scaled to size, centre-cropped."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # JPEG: decode at the smallest DCT scale still >= size
        upright = ImageOps.exif_transpose(image)
    return ImageOps.fit(upright.convert("RGB"), (size, size), method=Image.Resampling.BICUBIC)


def encode_image(image: SourceImage, size: int, quality: int) -> bytes:
    try:
        square = square_rgb(image.path, size)
    except Exception:  # it decoded while planning, so the file changed under us
        raise ShardSetError(f"{image.relative} could not be read any more; rerun the same command "
                            "to plan the set anew.") from None
    buffer = io.BytesIO()
    square.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _decodes(path: Path, size: int) -> bool:
    try:
        square_rgb(path, size)
    except Exception:  # Pillow raises many types for damaged or foreign files; each means "skip it"
        return False
    return True


def ingest_recipe(plan: IngestPlan, image_size: int, quality: int, seed: int,
                  groups_per_shard: int) -> dict[str, Any]:
    """Everything that decides the set's bytes (not where the folder lies); its hash is the set id."""
    listing = "".join(f"{image.relative}\t{image.path.stat().st_size}\n" for image in plan.images)
    return {
        "kind": "real",
        "groups": len(plan.images),
        "views": 1,
        "image": {"codec": "jpeg", "quality": quality, "size": image_size},
        "generator": None,
        "view_method": {"name": "none"},
        "classes": plan.classes,
        "class_subset": sorted({image.label for image in plan.images}),
        "seed": seed,
        "groups_per_shard": groups_per_shard,
        # names and sizes of the ingested files: a changed folder is a different set, never resumed into
        "source_files_sha256": hashlib.sha256(listing.encode("utf-8")).hexdigest(),
        "skipped": plan.skipped,
    }


def check_not_inside(out: Path, folder: Path) -> None:
    if out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents:
        raise ShardSetError(f"The output folder {out} must not be inside the ingested folder {folder}.")


def _write_shards(plan: IngestPlan, writer: SetWriter, encode: Callable[[SourceImage], bytes],
                  pool: Executor, workers: int, progress: bool) -> int:
    """Write every missing shard no other process is writing, then wait for those that are;
    returns how many shards this process wrote."""
    written, todo = 0, writer.missing()
    with tqdm(total=len(plan.images), initial=len(plan.images) - sum(len(writer.spans[i]) for i in todo),
              desc="ingest", unit="img", disable=not progress) as bar:
        while todo:
            skipped = []
            for index in todo:
                shard = writer.claim(index)
                if shard is None:
                    skipped.append(index)
                    continue
                anchors = writer.spans[index]
                encoded = ordered_map(pool, encode, [plan.images[anchor] for anchor in anchors],
                                      IN_FLIGHT_PER_WORKER * workers)
                with shard:
                    for anchor, view in zip(anchors, encoded):
                        image = plan.images[anchor]
                        meta = {"anchor": anchor, "class": image.label, "source": image.relative}
                        shard.add(Group(anchor=anchor, views=[view], label=image.label, meta=meta))
                        bar.update()
                    shard.commit()
                written += 1
            todo = writer.wait_for(skipped)
    return written
