"""``python -m generate.verify SET --regenerate N``: render N of a set's groups again with the
generator its manifest names and compare them with the stored ones.

The check needs the generators, so it lives here; ``python -m shards verify SET --regenerate N``
checks the format and then runs this command in a child process (``shards`` never imports
``generate``: DESIGN.md, "Layout").
"""

from __future__ import annotations

from pathlib import Path

import click

from common import commands
from common.console import exit_with, reports_errors
from generate.render import build_job, choose_device
from generate.generators import GeneratorOptions
from generate.like import read_source, settings_of
from generate.provenance import check_renders, same_stack
from shards.reader import open_set

DEFAULT_TOLERANCE = 1.0  # mean levels (of 255) between a stored view and its render on another stack


@commands.command()
@click.argument("location", metavar="SET")
@click.option("--regenerate", type=click.IntRange(1), default=8, help="Groups to render again, spread over the shards.")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="The generator's weights folder, checked against the manifest's sha256 [default: none: the "
                   "generator's own, or the package cache].")
@click.option("--walks", type=click.Path(path_type=Path), default=None,
              help="The walk file of a set of steered views, checked against the manifest's sha256 "
                   "[default: none].")
@click.option("--seed", type=int, default=0, help="Seed of the choice of groups.")
@click.option("--tolerance", type=click.FloatRange(0), default=DEFAULT_TOLERANCE,
              help="Mean difference in levels allowed between a view and its render on another software "
                   "stack (on the stack that made the set, views must be the same bytes).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              help="Where the generator runs; auto picks CUDA when present.")
@reports_errors
def main(location: str, regenerate: int, weights: Path | None, walks: Path | None, seed: int, tolerance: float,
         device: str) -> None:
    """Render some groups of a set again from its manifest and compare latents, classes and views."""
    source = read_source(location)
    if "lineage" in source:
        exit_with(f"{location} was derived from other sets (python -m shards {source['lineage'].get('operation')}), "
                  "so its groups are rendered by its parents' recipes: check them with --regenerate, and this set "
                  "with python -m shards verify.")
    settings = settings_of(source, walks)
    torch_device = choose_device(device)
    options = GeneratorOptions(weights=weights, device=torch_device, truncation=settings.views.truncation,
                               resolution=settings.image_size, precision=settings.precision,
                               sampling_steps=settings.sampling_steps, guidance=settings.guidance)
    generator, config = build_job(settings, options, batch_size=settings.views.views, out=Path(location),
                                  encoder="cpu", source=source)
    checked, problems = check_renders(open_set(location), generator, config, regenerate, seed, tolerance)
    for problem in problems:
        click.echo(problem.message)
    stack = "the stack that made it" if same_stack(source) else f"another stack (within {tolerance:g} levels)"
    if problems:
        shards = sorted({problem.shard for problem in problems})
        exit_with(f"{len(problems)} of {checked} groups rendered again differ from {location} "
                  f"(in {', '.join(shards)}): the set is not what its manifest says.", 1)
    click.echo(f"{location}: {checked} groups rendered again match their latents, classes and views, on {stack}.")


if __name__ == "__main__":
    main(prog_name="python -m generate.verify")
