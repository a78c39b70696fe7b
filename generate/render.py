"""Rendering the set the command line asks for: settings checked, generator built, job run.

Everything here needs torch and the generators; ``generate.cli``, which parses the flags, imports this
module only once a set is to be rendered, so that ``python -m generate --help`` starts at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
import os
import sys
from pathlib import Path

import click
import torch
from click.core import ParameterSource

from generate.batch_size import auto_batch_size
from generate.classes import select_classes
from generate.choices import MAX_LATENT_SCALE, MAX_SHARDS, RECIPE_OPTIONS
from generate.encoding import choose_encoder
from generate.generators import Generator, GeneratorOptions, make_generator
from generate.generators.diffusion import NAMES as DIFFUSION_GENERATORS
from generate.generators.runtime import default_precision, precision_of
from generate.job import JobConfig, Partition, build_recipe, run_job
from generate.derived import regenerate_derived
from generate.like import Settings, check_recipe, check_weights, compare_rows, read_source, settings_of
from generate.sampling import DEFAULT_STRENGTH, Steering, ViewSpec
from generate.walks import Walks, check_generator, load_walks, parse_names, parse_ranges
from common.console import exit_with
from common.files import check_output_path
from shards.lineage import parse_shard_list
from shards.manifest import read_record

# Options that may differ between the processes writing one set and do not change its content.
_NOT_RECORDED = ("--shard-index", "--num-shards", "--shards", "--batch-size", "--device", "--jpeg-encoder")
_NOT_RECORDED_FLAGS = ("--progress", "--no-progress", "--channels-last", "--cudnn-benchmark", "--compile")


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
                          sampling_steps: int | None = None, guidance: float | None = None,
                          strength: float | None = None) -> Settings:
    """The content settings as the flags give them, refused in one sentence before weights load."""
    check_shard_count(n_anchors, groups_per_shard)
    if (steer_range or steer_directions) and walks is None:
        exit_with("--steer-range and --steer-directions choose among the walks of --walks FILE; give it.")
    loaded = load_walks(walks) if walks is not None else None
    view_spec = ViewSpec(method=view_method,
                         views=views if views is not None else (1 if view_method == "none" else 4),
                         sigma=sigma, truncation=truncation, preserve_norm=bool(preserve_norm),
                         steering=steering(loaded, steer_range, steer_directions) if loaded else None,
                         strength=DEFAULT_STRENGTH if strength is None and view_method == "renoise" else strength)
    if preserve_norm is None and generator in DIFFUSION_GENERATORS and view_spec.gaussian:
        # A sampler reads initial noise with a longer norm as noisier than its first step: see the README.
        view_spec = dataclasses.replace(view_spec, preserve_norm=True)
    # settings errors before any weights are loaded
    view_spec.check(conditional=True, diffusion=generator in DIFFUSION_GENERATORS)
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
    settings.views.check(conditional=model.num_classes > 0, diffusion=hasattr(model, "renoise"))
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


def render(generator: str, weights: Path | None, n_anchors: int, views: int | None, view_method: str,
           sigma: float, walks: Path | None, steer_range: tuple[str, ...], steer_directions: str | None,
           preserve_norm: bool | None, truncation: float, classes: str | None, seed: int, image_size: int | None,
           quality: int, groups_per_shard: int, batch_size: int | str, device: str,
           precision: str | None, sampling_steps: int | None, guidance: float | None, strength: float | None,
           jpeg_encoder: str,
           channels_last: bool, cudnn_benchmark: bool, compile_network: bool, out: Path, license: str, description: str | None, like: str | None,
           parents: tuple[str, ...], only_shards: str | None, shard_index: int, num_shards: int,
           progress: bool) -> None:
    """Render the set the flags (or --like's manifest) describe; the flags as ``generate.cli.main`` parsed them."""
    check_output_path(out)
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
                                         sampling_steps, guidance, strength)
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
