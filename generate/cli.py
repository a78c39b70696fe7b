"""``python -m generate``: render a generator's multiview groups into a shard set."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
import os
import re
from decimal import Decimal
import sys
from pathlib import Path

import click
import torch
from click.core import ParameterSource

from generate.batch_size import auto_batch_size
from generate.classes import select_classes
from generate.encoding import JPEG_ENCODERS, choose_encoder
from generate.generators import DEFAULT_GENERATOR, Generator, GeneratorOptions, make_generator
from generate.generators.base import PRECISIONS
from generate.generators.diffusion import MAX_STEPS, NAMES as DIFFUSION_GENERATORS
from generate.generators.runtime import default_precision, precision_of
from generate.job import JobConfig, Partition, build_recipe, run_job
from generate.derived import regenerate_derived
from generate.like import Settings, check_recipe, check_weights, compare_rows, read_source, settings_of
from generate.sampling import VIEW_METHODS, Steering, ViewSpec
from generate.walks import Walks, check_generator, load_walks, parse_names, parse_ranges
from common import commands
from common.console import exit_with, reports_errors
from common.numbers import seed_range
from shards.card import UNKNOWN as UNKNOWN_LICENSE
from shards.lineage import parse_shard_list
from shards.manifest import read_record
from shards.schema import KEY_DIGITS

_COUNT = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")
_SCALE = {"": 1, "k": 10**3, "m": 10**6}
# Options that may differ between the processes writing one set and do not change its content.
_NOT_RECORDED = ("--shard-index", "--num-shards", "--shards", "--batch-size", "--device", "--jpeg-encoder")
_NOT_RECORDED_FLAGS = ("--progress", "--no-progress", "--channels-last", "--cudnn-benchmark", "--compile")
# Bounds on numbers, so that a typo is refused in one sentence instead of failing hours later.
MAX_ANCHORS = 10**KEY_DIGITS  # anchors 0 .. 10^10 - 1 have 10-digit keys
MAX_SHARDS = 10**6  # shard names have 6 digits
MAX_GROUPS_PER_SHARD = 100_000  # a shard's latents are drawn, and its tar written, at once
MAX_VIEWS = 1000  # a group's views are held together; readers refuse more than 1024 by default
MAX_BATCH_SIZE = 4096
MAX_LATENT_SCALE = 100.0  # --sigma and --truncation: latents are standard normals truncated to [-2, 2]
# The options whose values the manifest records: --like reads them all from it instead.
RECIPE_OPTIONS = ("generator", "n_anchors", "views", "view_method", "sigma", "steer_range", "steer_directions",
                  "preserve_norm", "truncation", "classes", "seed", "image_size", "quality", "groups_per_shard",
                  "precision", "license", "description", "sampling_steps", "guidance")


class CountType(click.ParamType):
    """A positive whole count written as 2000, 130k or 1.3M, at most MAX_ANCHORS."""

    name = "count"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        match = _COUNT.match(str(value).strip())
        # Decimal, so that 4.1M is exactly 4100000 (in floats it is 4099999.9999999995).
        count = Decimal(match.group(1)) * _SCALE[match.group(2).lower()] if match else Decimal(0)
        if not match or count != count.to_integral_value() or count < 1:
            self.fail(f"{value!r} is not a positive whole count such as 2000, 130k or 1.3M.",
                      param, ctx)
        if count > MAX_ANCHORS:
            self.fail(f"{value!r} is more than {MAX_ANCHORS:,} anchors, the most that "
                      f"{KEY_DIGITS}-digit group keys can number.", param, ctx)
        return int(count)


class BatchSizeType(click.ParamType):
    """A batch size from 1 to MAX_BATCH_SIZE, or ``auto``."""

    name = "size|auto"

    def convert(self, value, param, ctx) -> int | str:
        if value == "auto" or isinstance(value, int):
            return value
        text = str(value).strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_BATCH_SIZE:
            self.fail(f"{value!r} is not auto or a whole number from 1 to {MAX_BATCH_SIZE}.", param, ctx)
        return int(text)


def choose_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            exit_with("--device cuda was asked for, but no CUDA device is available.")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def choose_partition(shard_index: int, num_shards: int) -> Partition:
    """Job-array task ``shard_index`` of ``num_shards``, further split among torchrun's ranks."""
    if not 0 <= shard_index < num_shards:
        exit_with(f"--shard-index must lie in 0..{num_shards - 1} for --num-shards {num_shards}.")
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return Partition(index=shard_index * world + rank, count=num_shards * world)


def check_shard_count(n_anchors: int, groups_per_shard: int) -> None:
    shards = -(-n_anchors // groups_per_shard)
    if shards > MAX_SHARDS:
        exit_with(f"--n-anchors {n_anchors} in shards of {groups_per_shard} groups makes {shards:,} "
                  f"shards, more than the {MAX_SHARDS:,} that 6-digit shard names allow; raise "
                  "--groups-per-shard.")


def check_latent_scales(sigma: float, truncation: float) -> None:
    """Finite values are checked by ViewSpec; these bound them, so latents stay meaningful."""
    for flag, value in (("--sigma", sigma), ("--truncation", truncation)):
        if value > MAX_LATENT_SCALE:
            exit_with(f"{flag} must be at most {MAX_LATENT_SCALE:g}, not {value:g}: latents are "
                      "standard normals truncated to [-2, 2].")


def recorded_command(argv: list[str]) -> list[str]:
    """The command line for the manifest, the same for every process that writes the set."""
    kept, skip_value = ["python", "-m", "generate"], False
    for argument in argv:
        name = argument.split("=", 1)[0]
        if skip_value:
            skip_value = False
        elif name in _NOT_RECORDED:
            skip_value = "=" not in argument
        elif name not in _NOT_RECORDED_FLAGS:
            kept.append(argument)
    return kept


def steering(walks: Walks, ranges: tuple[str, ...], directions: str | None) -> Steering:
    """The walks of a walk file as steered views use them: the directions chosen, with their
    ranges from the file unless --steer-range gives others."""
    names = walks.names
    chosen = parse_names(directions, names, "--steer-directions") if directions else names
    bounds = {**dict(zip(names, walks.ranges)), **parse_ranges(ranges, names, "--steer-range")}
    rows = [names.index(name) for name in chosen]
    return Steering(names=tuple(chosen), directions=walks.directions[rows],
                    ranges=tuple(bounds[name] for name in chosen), walks_sha256=walks.sha256,
                    walks_method=walks.method)


def refuse_recipe_options(context: click.Context) -> None:
    """--like takes every content setting from the manifest: one given as well is a mistake."""
    given = [parameter.opts[0] for parameter in context.command.params
             if parameter.name in RECIPE_OPTIONS
             and context.get_parameter_source(parameter.name) is ParameterSource.COMMANDLINE]
    if given:
        exit_with(f"--like takes every setting that decides a set's content from its manifest; drop "
                  f"{', '.join(given)}.")


def settings_from_options(generator: str, n_anchors: int, views: int | None, view_method: str, sigma: float,
                          walks: Path | None, steer_range: tuple[str, ...], steer_directions: str | None,
                          preserve_norm: bool | None, truncation: float, classes: str | None, seed: int,
                          image_size: int | None, quality: int, groups_per_shard: int,
                          precision: str | None, license: str, description: str | None,
                          sampling_steps: int | None = None, guidance: float | None = None) -> Settings:
    """The content settings as the flags give them, refused in one sentence before weights load."""
    check_shard_count(n_anchors, groups_per_shard)
    if (steer_range or steer_directions) and walks is None:
        exit_with("--steer-range and --steer-directions choose among the walks of --walks FILE; give it.")
    loaded = load_walks(walks) if walks is not None else None
    view_spec = ViewSpec(method=view_method,
                         views=views if views is not None else (1 if view_method == "none" else 4),
                         sigma=sigma, truncation=truncation, preserve_norm=bool(preserve_norm),
                         steering=steering(loaded, steer_range, steer_directions) if loaded else None)
    if preserve_norm is None and generator in DIFFUSION_GENERATORS and view_spec.gaussian:
        # A sampler reads initial noise with a longer norm as noisier than its first step: see the README.
        view_spec = dataclasses.replace(view_spec, preserve_norm=True)
    view_spec.check(conditional=True)  # settings errors before any weights are loaded
    check_latent_scales(sigma, truncation)
    return Settings(generator=generator, n_anchors=n_anchors, views=view_spec, classes=classes, seed=seed,
                    image_size=image_size, quality=quality, groups_per_shard=groups_per_shard,
                    precision=precision, walks=loaded, license=license, description=description,
                    sampling_steps=sampling_steps, guidance=guidance)


@dataclass(frozen=True)
class Runtime:
    """How this process renders, whatever the set: the options that do not change its content."""

    weights: Path | None
    device: torch.device
    batch_size: int | str
    encoder: str
    channels_last: bool
    cudnn_benchmark: bool
    compile: bool
    progress: bool
    command: list[str]

    def options(self, settings: Settings) -> GeneratorOptions:
        return GeneratorOptions(weights=self.weights, device=self.device, truncation=settings.views.truncation,
                                resolution=settings.image_size,
                                precision=settings.precision or default_precision(self.device),
                                channels_last=self.channels_last, cudnn_benchmark=self.cudnn_benchmark,
                                compile=self.compile, sampling_steps=settings.sampling_steps,
                                guidance=settings.guidance)


def render_parent(source: dict, folder: Path, only: frozenset[int], walks: Path | None, runtime: Runtime) -> None:
    """Fill shards ``only`` of the hollow set of a derived set's parent in ``folder``."""
    settings = settings_of(source, walks)
    model, config = build_job(settings, runtime.options(settings), runtime.batch_size, folder, runtime.encoder,
                              source)
    run_job(model, config, Partition(only=only), runtime.command, show_progress=runtime.progress)


def render_derived(source: dict, parents: tuple[str, ...], out: Path, walks: Path | None, runtime: Runtime) -> None:
    """Render a derived set again through its parents, and check it is the manifest's."""
    recipe = regenerate_derived(source, parents, out, partial(render_parent, walks=walks, runtime=runtime),
                                runtime.command)
    check_recipe(source, recipe)
    report_differences(source, out, list(range(len(source["shards"]))))
    click.echo(f"Shard set complete: {out} ({source['groups']} groups, derived again from its parents).")


def build_job(settings: Settings, options: GeneratorOptions, batch_size: int | str, out: Path, encoder: str,
              source: dict | None = None) -> tuple[Generator, JobConfig]:
    """The generator and the job of ``settings``; with the ``source`` manifest they are checked to
    make exactly its set (weights by sha256, then the whole recipe)."""
    model = make_generator(settings.generator, options)
    if settings.precision and precision_of(model) != settings.precision:
        exit_with(f"Generator {settings.generator!r} renders in {precision_of(model)}, not in the "
                  f"{settings.precision} that --precision asks for; drop --precision.")
    if source is not None:
        check_weights(source, getattr(model, "weights_sha256", None), options.weights)
    if settings.walks is not None:
        check_generator(settings.walks, settings.generator, model)
    if (settings.sampling_steps, settings.guidance) != (None, None) and not hasattr(model, "sampler"):
        exit_with(f"--sampling-steps and --guidance drive a diffusion sampler; generator {settings.generator!r} "
                  "has none, so drop them.")
    settings.views.check(conditional=model.num_classes > 0)
    size = settings.image_size or model.resolution
    if batch_size == "auto":
        batch_size = auto_batch_size(model, size)
        click.echo(f"--batch-size auto: {batch_size} images per batch.", err=True)
    chosen = settings.classes
    config = JobConfig(generator=settings.generator, n_anchors=settings.n_anchors, views=settings.views,
                       classes=chosen if isinstance(chosen, list) else select_classes(chosen, model.num_classes),
                       seed=settings.seed, image_size=size, quality=settings.quality,
                       groups_per_shard=settings.groups_per_shard, batch_size=batch_size, out=out,
                       jpeg_encoder=encoder, license=settings.license, description=settings.description)
    if source is not None:
        check_recipe(source, build_recipe(model, config))
    return model, config


def report_differences(source: dict, out: Path, shards: list[int]) -> None:
    """Say which rendered shards differ from the manifest's bytes, and on which stacks, and fail."""
    records = {index: record for index in shards if (record := read_record(out, index)) is not None}
    differing = compare_rows(source, records)
    if differing:
        there = source.get("provenance", {}).get("torch_version", "?")
        exit_with(f"{len(differing)} of {len(records)} shards rendered here ({', '.join(differing[:5])}) differ "
                  f"from the sha256 in the manifest: the set was made with torch {there}, this is torch "
                  f"{torch.__version__}, and another stack renders other pixels.", 1)


@commands.command()
@click.option("--generator", default=DEFAULT_GENERATOR,
              help="Registered generator (deadleaves, biggan-deep-128/256/512, dit-xl-2-256/512, diffusers) or "
                   "package.module:factory.")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Folder with config.json and pytorch_model.bin (BigGAN), or a diffusers pipeline folder (dit-xl-2-*, "
                   "diffusers); default: the package cache (BigGAN).")
@click.option("--n-anchors", type=CountType(), default=None,
              help="Number of anchor groups to render, e.g. 2000, 130k, 1.3M (required unless --like).")
@click.option("--views", type=click.IntRange(1, MAX_VIEWS), default=None,
              help="Images per group, the anchor included [default: 4, or 1 with --view-method none].")
@click.option("--view-method", type=click.Choice(VIEW_METHODS), default="gaussian",
              help="Positives: z + sigma*noise, a fresh z of the same class, none (K=1), z moved "
                   "along latent walks (steer), or z + sigma*noise moved along them (gaussian+steer).")
@click.option("--sigma", type=float, default=0.2,
              help="Std of the truncated-normal noise added to the anchor latent (gaussian views).")
@click.option("--walks", type=click.Path(path_type=Path), default=None,
              help="Walk file of python -m generate.steer (steer and gaussian+steer views).")
@click.option("--steer-range", multiple=True, metavar="NAME=LOW:HIGH",
              help="Range of one direction's walk amount (or of a transform's, e.g. color), "
                   "instead of the walk file's; repeatable.")
@click.option("--steer-directions", default=None, metavar="NAMES",
              help="Directions to steer along, e.g. zoom,shiftx [default: all in the walk file].")
@click.option("--preserve-norm/--no-preserve-norm", default=None,
              help="Gaussian views as (z + sigma*noise) / sqrt(1 + sigma^2), on the prior's shell "
                   "[default: on for gaussian views of diffusion generators (dit-xl-2-*, diffusers), else off].")
@click.option("--truncation", type=float, default=1.0,
              help="Latents are truncated normals in [-2, 2] scaled by this (BigGAN truncation trick).")
@click.option("--classes", default=None,
              help="Classes to draw anchors from: all, imagenet100, a file of indices, or 3,7,207.")
@click.option("--seed", type=seed_range(), default=0, help="Seed; every anchor's randomness comes from (seed, anchor).")
@click.option("--image-size", type=click.IntRange(8, 4096), default=None,
              help="Stored image size in pixels [default: the generator's own].")
@click.option("--quality", type=click.IntRange(1, 100), default=95, help="JPEG quality.")
@click.option("--groups-per-shard", type=click.IntRange(1, MAX_GROUPS_PER_SHARD), default=1000,
              help="Groups per tar shard.")
@click.option("--batch-size", type=BatchSizeType(), default=64,
              help="Images per generator forward; auto: the fastest that fits (measured on CUDA).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              help="Where the generator runs; auto picks CUDA when present.")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None,
              help="Numeric precision of the generator (recorded in the manifest unless fp32) "
                   "[default: bf16 on CUDA, fp32 on the CPU].")
@click.option("--sampling-steps", type=click.IntRange(1, MAX_STEPS), default=None,
              help="Denoising steps of a diffusion generator's DDIM sampler [default: 50].")
@click.option("--guidance", type=float, default=None,
              help="Classifier-free guidance scale of a diffusion generator, 1 for none [default: 1.5, the "
                   "DiT paper's, for models with a null class (DiT); 1 for others].")
@click.option("--jpeg-encoder", type=click.Choice(JPEG_ENCODERS), default="auto",
              help="Where images are JPEG-encoded: PIL threads on the CPU, or nvJPEG on the GPU "
                   "that rendered them; auto picks the rendering device's.")
@click.option("--channels-last", is_flag=True, help="Channels-last layout for the generator (CUDA).")
@click.option("--cudnn-benchmark", is_flag=True,
              help="Let cuDNN time its kernels and keep the fastest (CUDA; the kernels, and so the "
                   "last bits of images, may then differ between runs).")
@click.option("--compile", "compile_network", is_flag=True,
              help="torch.compile the generator (CUDA; the first batches wait for the compiler).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output folder of the shard set; re-running the same command resumes it.")
@click.option("--license", default=UNKNOWN_LICENSE,
              help="The set's licence for its dataset card, a Hugging Face licence id such as cc-by-4.0.")
@click.option("--description", default=None,
              help="A paragraph for the dataset card [default: none: a sentence on how the set was made].")
@click.option("--like", default=None, metavar="SET_OR_MANIFEST",
              help="Render the set a manifest describes (a set's folder or URL, or its manifest.json) with "
                   "every content setting from it; --weights and --walks are checked against its sha256s; "
                   "--out may be a hollow set, which is filled in place [default: none: the flags give "
                   "every setting].")
@click.option("--parent", "parents", multiple=True, metavar="SET_OR_MANIFEST",
              help="With --like of a derived set (shards subset or merge): one of its parents, a set, a hollow set "
                   "or its manifest, checked by sha256; repeat for each, in the order of its lineage [default: "
                   "none].")
@click.option("--shards", "only_shards", default=None, metavar="0,5,9-12",
              help="Render only these shards of the set [default: all].")
@click.option("--shard-index", type=click.IntRange(0, MAX_SHARDS - 1), default=0,
              help="This task's index in a job array (takes shards with index % num-shards == it).")
@click.option("--num-shards", type=click.IntRange(1, MAX_SHARDS), default=1,
              help="Number of tasks in the job array.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@reports_errors
def main(generator: str, weights: Path | None, n_anchors: int, views: int | None, view_method: str,
         sigma: float, walks: Path | None, steer_range: tuple[str, ...], steer_directions: str | None,
         preserve_norm: bool | None, truncation: float, classes: str | None, seed: int, image_size: int | None,
         quality: int, groups_per_shard: int, batch_size: int | str, device: str,
         precision: str | None, sampling_steps: int | None, guidance: float | None, jpeg_encoder: str,
         channels_last: bool, cudnn_benchmark: bool, compile_network: bool, out: Path, license: str, description: str | None, like: str | None,
         parents: tuple[str, ...], only_shards: str | None, shard_index: int, num_shards: int,
         progress: bool) -> None:
    """Render multiview groups (an anchor latent and its neighbours) into a WebDataset shard set."""
    partition = choose_partition(shard_index, num_shards)
    source = None
    if like is not None:
        refuse_recipe_options(click.get_current_context())
        source = read_source(like)
        settings = settings_of(source, walks)
    elif n_anchors is None:
        exit_with("Give --n-anchors N, or --like SET to render a set again from its manifest.")
    else:
        settings = settings_from_options(generator, n_anchors, views, view_method, sigma, walks, steer_range,
                                         steer_directions, preserve_norm, truncation, classes, seed, image_size,
                                         quality, groups_per_shard, precision, license, description,
                                         sampling_steps, guidance)
    if parents and (source is None or "lineage" not in source):
        exit_with("--parent gives the parents of a derived set; it needs --like with a subset or a merge.")
    torch_device = choose_device(device)
    runtime = Runtime(weights=weights, device=torch_device, batch_size=batch_size,
                      encoder=choose_encoder(jpeg_encoder, torch_device), channels_last=channels_last,
                      cudnn_benchmark=cudnn_benchmark, compile=compile_network, progress=progress,
                      command=recorded_command(sys.argv[1:]))
    if source is not None and "lineage" in source:
        if only_shards is not None or partition.count > 1:
            exit_with("A derived set is rendered whole, in one process: drop --shards, --num-shards and torchrun.")
        render_derived(source, parents, out, walks, runtime)
        return
    model, config = build_job(settings, runtime.options(settings), batch_size, out, runtime.encoder, source)
    if only_shards is not None:
        partition = dataclasses.replace(partition, only=frozenset(parse_shard_list(only_shards, config.shard_count)))
    complete = run_job(model, config, partition, runtime.command, show_progress=progress)
    if source is not None:
        report_differences(source, out, [index for index in range(config.shard_count) if partition.owns(index)])
    if complete:
        click.echo(f"Shard set complete: {out} ({settings.n_anchors} groups, {config.shard_count} shards).")
    elif only_shards is not None:
        click.echo(f"Shards {only_shards} are written to {out}.")
    else:
        click.echo(f"This process's shards are written to {out}; the manifest follows when the "
                   "other processes finish.")
