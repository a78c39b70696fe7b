"""``python -m shards``: describe, verify, look at, ingest and copy shard sets."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from common import commands
from common.console import exit_with, reports_errors
from common.parallel import usable_cores
from shards.card import UNKNOWN
from shards.contact_sheet import make_contact_sheet
from shards.copy import copy_set
from shards.hollow import write_hollow
from shards.lineage import check_mergeable, derive, subset_anchors
from shards.ingest import class_folders, ingest_folder
from shards.reader import ShardSet, open_set
from shards.regenerate import regenerate_groups
from shards.verify import verify_set

NAMES_SHOWN = 5  # class names and skipped files listed before "and N more"
allow_pipe_option = click.option(
    "--allow-pipe", is_flag=True,
    help="Accept a pipe:COMMAND location: it runs COMMAND as a shell command and reads the set from its "
         "output. Without it only folders and http(s)://, s3://, gs:// and hf:// URLs are read.")


@commands.group(help="Inspect, verify, view and ingest genviews shard sets.")
def cli() -> None:
    pass


@cli.command(help="Describe a finished shard set from its manifest.")
@click.argument("location", metavar="SET")
@allow_pipe_option
@reports_errors
def info(location: str, allow_pipe: bool) -> None:
    for line in describe(open_set(location, allow_pipe)):
        click.echo(line)


@cli.command(short_help="Check every shard against the manifest.",
             help="Check every shard of a set against its manifest: size, sha256, groups and samples, "
                  "every view decoded as the trainer decodes it.")
@click.argument("location", metavar="SET")
@click.option("--decode/--no-decode", default=True,
              help="Decode every view; --no-decode checks JPEG frame headers only (faster, and misses a "
                   "view whose body is corrupt).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes that check shards at once [default: every core this process may use].")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@click.option("--regenerate", type=click.IntRange(0), default=0,
              help="Then render this many groups again, spread over the shards, with the manifest's generator, "
                   "and compare latents and views (python -m generate.verify).")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="The generator's weights for --regenerate, checked by sha256 [default: none: the "
                   "generator's own, or the package cache].")
@click.option("--walks", type=click.Path(path_type=Path), default=None,
              help="The walk file for --regenerate of a set of steered views [default: none].")
@allow_pipe_option
@reports_errors
def verify(location: str, decode: bool, workers: int | None, progress: bool, regenerate: int, weights: Path | None,
           walks: Path | None, allow_pipe: bool) -> None:
    report = verify_set(location, progress=progress, allow_pipe=allow_pipe, decode=decode,
                        workers=workers or usable_cores())
    for problem in report.problems:
        click.echo(problem.message)
    if not report.intact:
        exit_with(f"{len(report.problems)} of {report.shards} shards of {location} are damaged or missing.", 1)
    if not regenerate:
        click.echo(f"{location} is intact: {report.groups} groups in {report.shards} shards.")
        return
    # Not "intact" yet: the rendering may still show the set is not what its manifest says.
    click.echo(f"{location}'s {report.shards} shards match its manifest ({report.groups} groups); rendering "
               f"{regenerate} groups again to compare.")
    if status := regenerate_groups(location, regenerate, weights, walks):
        sys.exit(status)


@cli.command(short_help="Draw a contact sheet PNG of some groups.",
             help="Draw a contact sheet PNG: one row per group, the anchor and then its views.")
@click.argument("location", metavar="SET")
@click.option("--groups", default=8, help="How many groups (rows) to draw.")
@click.option("--start", default=0, help="Anchor index of the first group drawn.")
@click.option("--out", default="sheet.png", help="Where to write the PNG.")
@click.option("--thumb-size", default=96, help="Side of each thumbnail in pixels.")
@allow_pipe_option
@reports_errors
def show(location: str, groups: int, start: int, out: str, thumb_size: int, allow_pipe: bool) -> None:
    written = make_contact_sheet(location, out, groups=groups, start=start, thumb_size=thumb_size,
                                 allow_pipe=allow_pipe)
    click.echo(f"Wrote {written}.")


@cli.command(short_help="Turn an ImageFolder of photos into a shard set.",
             help="Turn an ImageFolder of real photos (FOLDER/CLASS/IMAGE) into a shard set with one view "
                  "per group in OUT; rerunning the same command resumes.")
@click.argument("folder", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--image-size", type=int, required=True,
              help="Side of the square images: the shorter side is scaled to it, then centre-cropped.")
@click.option("--quality", default=95, help="JPEG quality of the re-encoded images.")
@click.option("--groups-per-shard", default=1000, help="Images per shard file.")
@click.option("--seed", default=0, help="Seed of the permutation that mixes classes.")
@click.option("--license", default=UNKNOWN,
              help="The set's licence for its dataset card, a Hugging Face licence id such as cc-by-4.0 (that of "
                   "the photos).")
@click.option("--description", default=None,
              help="A paragraph for the dataset card [default: none: a sentence on how the set was made].")
@click.option("--classes", default=None, metavar="imagenet100|FILE|A,B",
              help="Ingest only these class folders, each of which must exist: imagenet100 (the WordNet ids of "
                   "CMC's ImageNet-100, as ImageNet's folders are named), a file of folder names (one per line) "
                   "or names separated by commas [default: every class folder].")
@click.option("--workers", type=int, default=None,
              help="Threads that decode, resize and encode images [default: the CPU count, at most 8].")
@click.option("--progress/--no-progress", default=True, help="Show progress bars on stderr.")
@reports_errors
def ingest(folder: Path, out: Path, image_size: int, quality: int, groups_per_shard: int, seed: int,
           license: str, description: str | None, classes: str | None, workers: int | None, progress: bool) -> None:
    report = ingest_folder(folder, out, image_size=image_size, quality=quality,
                           groups_per_shard=groups_per_shard, seed=seed, workers=workers,
                           command=["python", "-m", "shards", *sys.argv[1:]], progress=progress,
                           license=license, description=description,
                           classes=class_folders(classes) if classes is not None else None)
    if report.skipped:
        click.echo(f"warning: skipped {len(report.skipped)} files that are not readable images: "
                   f"{listing(report.skipped)}.", err=True)
    click.echo(f"{out}: {report.groups} groups of {report.classes} classes in "
               f"{report.shards_written + report.shards_kept} shards ({report.shards_written} written, "
               f"{report.shards_kept} already there); set id {report.set_id}.")


@cli.command(short_help="Write a set's manifest, records and card without its images.",
             help="Write the hollow copy of a synthetic set into the new folder OUT: its manifest, shard "
                  "records and dataset card, kilobytes that travel instead of the images. python -m generate "
                  "--like OUT --out OUT fills it in place.")
@click.argument("location", metavar="SET")
@click.argument("out", type=click.Path(path_type=Path))
@reports_errors
def hollow(location: str, out: Path) -> None:
    report = write_hollow(location, out)
    click.echo(f"{out}: hollow set of {report.groups} groups in {report.shards} shards, "
               f"{report.bytes_written:,} bytes instead of {report.bytes_full:,}; fill it with "
               f"python -m generate --like {out} --out {out}.")


@cli.command(short_help="Make a set of some groups of another.",
             help="Make a new set in OUT of the groups of SET that one of --classes, --groups or --shards selects, "
                  "copied byte for byte under new keys; its manifest records SET in its lineage.")
@click.argument("location", metavar="SET")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--classes", default=None, help="Keep the groups of these classes: names or indices, e.g. cat,dog "
                                              "or 3,7 [default: none].")
@click.option("--groups", type=click.IntRange(1), default=None, help="Keep the first N groups [default: none].")
@click.option("--shards", "shard_list", default=None, metavar="0,5,9-12",
              help="Keep the groups of these shards [default: none].")
@click.option("--groups-per-shard", type=click.IntRange(1), default=None,
              help="Groups per shard of the new set [default: the parent's].")
@reports_errors
def subset(location: str, out: Path, classes: str | None, groups: int | None, shard_list: str | None,
           groups_per_shard: int | None) -> None:
    parent = open_set(location)
    anchors, arguments = subset_anchors(parent, classes, groups, shard_list)
    recipe = derive([parent], [(0, anchor) for anchor in anchors], out, "subset", arguments, groups_per_shard,
                    ["python", "-m", "shards", *sys.argv[1:]])
    click.echo(f"{out}: {recipe['groups']} of the {parent.groups} groups of {location}.")


@cli.command(short_help="Make one set of the groups of several.",
             help="Make a new set in OUT of every group of SETS, in the order given, copied byte for byte under "
                  "new keys; the sets must share kind, views, image format and classes. Its manifest records "
                  "them in its lineage.")
@click.argument("locations", metavar="SETS...", nargs=-1, required=True)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--groups-per-shard", type=click.IntRange(1), default=None,
              help="Groups per shard of the new set [default: the first set's].")
@reports_errors
def merge(locations: tuple[str, ...], out: Path, groups_per_shard: int | None) -> None:
    parents = [open_set(location) for location in locations]
    check_mergeable(parents)
    picks = [(index, anchor) for index, parent in enumerate(parents) for anchor in range(parent.groups)]
    recipe = derive(parents, picks, out, "merge", {}, groups_per_shard, ["python", "-m", "shards", *sys.argv[1:]])
    click.echo(f"{out}: {recipe['groups']} groups of {len(parents)} sets.")


@cli.command(short_help="Copy a set between folders, servers and buckets.",
             help="Copy the finished set SET to DEST, shard by shard, each checked against its sha256 on arrival; "
                  "the manifest is written last. SET is a folder or an http(s)://, s3://, gs:// or hf:// URL, DEST "
                  "a folder or an s3://, gs:// or hf:// URL. Rerunning the same command resumes.")
@click.argument("location", metavar="SET")
@click.argument("destination", metavar="DEST")
@click.option("--workers", type=click.IntRange(min=1), default=4, help="Shards copied at once.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@reports_errors
def copy(location: str, destination: str, workers: int, progress: bool) -> None:
    report = copy_set(location, destination, workers=workers, progress=progress)
    click.echo(f"{destination}: {report.shards_copied + report.shards_kept} shards ({report.shards_copied} copied, "
               f"{report.bytes_copied:,} bytes; {report.shards_kept} already there); set id {report.set_id}.")


def describe(shard_set: ShardSet) -> list[str]:
    """The manifest in a few lines."""
    manifest = shard_set.manifest
    rows = shard_set.shard_rows
    megabytes = sum(row.get("bytes", 0) for row in rows) / 1e6
    image = manifest["image"]
    made_by = manifest.get("provenance", {})
    lines = [
        f"set          {shard_set.location} (set id {manifest.get('set_id', '?')})",
        f"kind         {shard_set.kind}: {shard_set.groups} groups x {shard_set.views} views",
        describe_origin(manifest),
        *describe_sampler((manifest.get("generator") or {}).get("sampler")),
        f"view method  {describe_method(manifest.get('view_method') or {})}",
        f"classes      {describe_classes(manifest)}",
        f"images       {image.get('codec', '?')} quality {image.get('quality', '?')}, "
        f"{image.get('size', '?')} px",
        f"shards       {len(rows)} ({manifest['groups_per_shard']} groups per shard), {megabytes:.1f} MB",
        f"seed         {manifest.get('seed', '?')}",
        *describe_lineage(manifest.get("lineage")),
        f"created by   genviews {made_by.get('package_version', '?')} "
        f"(git {made_by.get('git_commit', '?')}, torch {made_by.get('torch_version', '?')})",
    ]
    return lines


def describe_lineage(lineage: dict[str, Any] | None) -> list[str]:
    """A derived set's parents and how it was made from them; nothing for a set made from scratch."""
    if not lineage:
        return []
    arguments = ", ".join(f"{key}={value}" for key, value in sorted(lineage.get("arguments", {}).items()))
    parents = ", ".join(f"{parent.get('set_id')} (manifest sha256 {str(parent.get('manifest_sha256'))[:12]}...)"
                        for parent in lineage.get("parents", []))
    return [f"lineage      {lineage.get('operation')}" + (f" ({arguments})" if arguments else "") + f" of {parents}"]


def describe_origin(manifest: dict[str, Any]) -> str:
    generator = manifest.get("generator")
    if generator:
        return (f"generator    {generator.get('name', '?')} (latent {generator.get('latent_dim', '?')}, "
                f"{generator.get('num_classes', '?')} classes, {generator.get('resolution', '?')} px), "
                f"truncation {generator.get('truncation', '?')}")
    skipped = manifest.get("skipped", [])
    return f"source       {manifest.get('source', '?')} ({len(skipped)} files skipped)"


def describe_sampler(sampler: dict[str, Any] | None) -> list[str]:
    """A diffusion generator's sampler settings; nothing for a generator without a sampler."""
    if not sampler:
        return []
    return [f"sampler      {sampler.get('name', '?')}, eta {sampler.get('eta', '?')}, {sampler.get('steps', '?')} steps, "
            f"guidance {sampler.get('guidance', '?')}"]


def describe_method(method: dict[str, Any]) -> str:
    params = ", ".join(f"{key}={value}" for key, value in sorted(method.items()) if key != "name")
    return method.get("name", "?") + (f" ({params})" if params else "")


def describe_classes(manifest: dict[str, Any]) -> str:
    names = manifest["classes"]
    if not names:
        return "none (unlabelled)"
    present = manifest.get("class_subset", range(len(names)))
    counted = f"{len(present)} of {len(names)}" if len(present) != len(names) else f"{len(names)}"
    return f"{counted}: {listing([names[index] for index in present])}"


def listing(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")


def main() -> None:
    cli(prog_name="python -m shards")
