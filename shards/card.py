"""The dataset card of a finished set: ``README.md`` in the Hugging Face format, made from the
manifest alone, so a hollow set's card is the full set's, byte for byte.

The manifest's optional fields ``license`` (the set's), ``description`` and ``generator_license``
(the weights', where the generator knows it) feed the card; an older manifest without them gets a
card that says "unknown" plainly.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from common.files import write_bytes_atomic

CARD_NAME = "README.md"
UNKNOWN = "unknown"
CLASSES_LISTED = 100  # class names printed on the card before "and N more"
# Hugging Face size categories, by the number of rows (groups).
SIZE_CATEGORIES = ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"),
                   (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"))
LOADING = ("```python\nfrom glob import glob\nfrom datasets import load_dataset\n\n"
           "groups = load_dataset(\"webdataset\", data_files={\"train\": sorted(glob(\"shard-*.tar\"))}, "
           "split=\"train\")\n"
           "group = groups[0]  # group[\"0.jpg\"] is the anchor image, group[\"cls\"] its class\n```\n\n"
           "With genviews: `python -m shards verify SET`, then "
           "`from shards import open_set; for group in open_set(\"SET\"): ...`.")
RENOISE = {"renoise": " A positive's row of the latents is instead the noise that re-noises its anchor's "
                       "denoised latent to the level of the last strength x steps sampling steps, which denoise it "
                       "again (SDEdit)."}
CITATION = """@inproceedings{jahanian2022generative,
  title     = {Generative Models as a Data Source for Multiview Representation Learning},
  author    = {Jahanian, Ali and Puig, Xavier and Tian, Yonglong and Isola, Phillip},
  booktitle = {International Conference on Learning Representations},
  year      = {2022}
}"""


def card_facts(license: str, description: str | None, generator_license: str | None = None) -> dict[str, str]:
    """The manifest's optional card fields; absent where unknown, so that a set made without them
    has the manifest it always had (and readers of version 1 need nothing new)."""
    facts = {"license": license if license != UNKNOWN else None, "description": description,
             "generator_license": generator_license}
    return {name: value for name, value in facts.items() if value}


def size_category(groups: int) -> str:
    return next((name for bound, name in SIZE_CATEGORIES if groups < bound), "n>1T")


def pretty_name(manifest: dict[str, Any]) -> str:
    origin = _generator(manifest).get("name") or "real images"
    return f"genviews {origin} set {manifest.get('set_id', '')}".replace("  ", " ").strip()


def making_of(manifest: dict[str, Any]) -> str:
    """One sentence on what rendered a synthetic set: its generator, sampler and views (for Croissant)."""
    generator = _generator(manifest)
    sampler = generator.get("sampler")
    sampled = f", sampled by {_sampler_phrase(sampler)}" if sampler else ""
    return f"Rendered by the generator `{generator.get('name')}`{sampled}, with {_views_phrase(manifest)} views."


def card_text(manifest: dict[str, Any]) -> str:
    """The card: a YAML header (strings written as JSON, which YAML reads as is), then sections."""
    synthetic = manifest["kind"] == "synthetic"
    header = ["---", f"license: {json.dumps(manifest.get('license') or UNKNOWN)}",
              f"pretty_name: {json.dumps(pretty_name(manifest))}",
              "task_categories:", "- image-feature-extraction",
              "size_categories:", f"- {json.dumps(size_category(manifest['groups']))}",
              "tags:", *(f"- {tag}" for tag in ("genviews", manifest["kind"], "multiview", "contrastive-learning",
                                                 "webdataset")),
              "---"]
    sections = [f"# {pretty_name(manifest)}", manifest.get("description") or
                ("Multiview groups rendered by a generator for contrastive representation learning."
                 if synthetic else "Real images in the genviews shard-set format, one view per group."),
                "## How it was made", *_origin(manifest), "## Classes", _classes(manifest), "## Counts",
                _counts(manifest), "## Format", _format(manifest), "## How to load it", LOADING,
                "## Citation", "The method of the paper whose sets these are:", f"```bibtex\n{CITATION}\n```"]
    return "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n"


def write_card(folder: Path, manifest: dict[str, Any]) -> None:
    write_bytes_atomic(Path(folder) / CARD_NAME, card_text(manifest).encode("utf-8"))


def _origin(manifest: dict[str, Any]) -> list[str]:
    made_by = manifest.get("provenance") or {}
    command = shlex.join(made_by.get("command") or [UNKNOWN])
    lines = [f"Command: `{command}` (genviews {made_by.get('package_version', UNKNOWN)}, git "
             f"{made_by.get('git_commit', UNKNOWN)}, torch {made_by.get('torch_version', UNKNOWN)}).",
             f"Licence of the set: {manifest.get('license') or UNKNOWN + ' (its maker stated none)'}."]
    generator = _generator(manifest)
    if not generator:
        return [*lines, f"Source folder: `{manifest.get('source', UNKNOWN)}`."]
    sampler = generator.get("sampler")
    return [*lines,
            f"Generator: `{generator.get('name')}` (latent {generator.get('latent_dim')}, "
            f"{generator.get('num_classes')} classes, {generator.get('resolution')} px, truncation "
            f"{generator.get('truncation')}, {generator.get('precision', 'fp32')}); weights sha256: "
            f"`{generator.get('weights_sha256') or 'none (the generator has no weights file)'}`; licence of the "
            f"weights: {manifest.get('generator_license') or UNKNOWN}.",
            *([f"Sampler: {_sampler_phrase(sampler)}; a latent is the noise the sampler starts from."] if sampler
              else []),
            f"Views: {_views_phrase(manifest)}; seed {manifest.get('seed')}: every anchor's class, latent and views "
            "come from (seed, anchor)." + RENOISE.get((manifest.get("view_method") or {}).get("name"), ""),
            "Regenerate it, or fill a hollow copy, from its manifest: `python -m generate --like SET --out DIR "
            "[--weights DIR]`; spot-check it: `python -m shards verify SET --regenerate 8`."]


def _sampler_phrase(sampler: dict[str, Any]) -> str:
    """A diffusion generator's sampler settings (generate.generators.diffusion) in words."""
    return (f"`{sampler.get('name')}` with eta {sampler.get('eta')} (0: deterministic), {sampler.get('steps')} "
            f"sampling steps and classifier-free guidance scale {sampler.get('guidance')} (1: none)")


def _views_phrase(manifest: dict[str, Any]) -> str:
    method = manifest.get("view_method") or {}
    parameters = ", ".join(f"{key}={value}" for key, value in sorted(method.items()) if key != "name")
    return f"`{method.get('name', 'none')}`" + (f" ({parameters})" if parameters else "")


def _generator(manifest: dict[str, Any]) -> dict[str, Any]:
    """The generator's fields; none for a real set (its generator is null, or, in an old manifest, text)."""
    generator = manifest.get("generator")
    return generator if isinstance(generator, dict) else {}


def _classes(manifest: dict[str, Any]) -> str:
    names = manifest["classes"]
    if not names:
        return "None: the set is unlabelled."
    present = manifest.get("class_subset") or range(len(names))
    shown = ", ".join(f"{index} {names[index]}" for index in list(present)[:CLASSES_LISTED])
    more = len(present) - CLASSES_LISTED
    return f"{len(present)} of {len(names)} classes: {shown}" + (f" and {more} more." if more > 0 else ".")


def _counts(manifest: dict[str, Any]) -> str:
    rows = manifest["shards"]
    return (f"{manifest['groups']} groups of {manifest['views']} views ({manifest['groups'] * manifest['views']} "
            f"images), {manifest['image'].get('codec', 'jpeg')} quality {manifest['image'].get('quality')} at "
            f"{manifest['image']['size']} px, in {len(rows)} shards of {sum(row['bytes'] for row in rows):,} bytes.")


def _format(manifest: dict[str, Any]) -> str:
    last = manifest["views"] - 1
    views = (f"`KEY.0.jpg` .. `KEY.{last}.jpg`: the anchor, then its positives" if last
             else "`KEY.0.jpg`: the image")
    latents = "\n- `KEY.latents.npy`: float32 [views, latent_dim], the latent of every view" \
        if manifest["kind"] == "synthetic" else ""
    return (f"genviews shard-set format version {manifest.get('version')} (WebDataset tars). `manifest.json` "
            "lists every shard with its sha256; `croissant.json` describes the set in MLCommons Croissant. One "
            "sample is one anchor group, its key the 10-digit anchor index:\n"
            f"- {views}{latents}\n"
            "- `KEY.cls`: the class index as text (absent when unlabelled)\n"
            "- `KEY.json`: per-group metadata (anchor, class, view method)")
