"""``python -m generate``: render a generator's multiview groups into a shard set.

This module parses the flags only and imports no torch, so that ``--help`` starts at once; the
rendering lives in ``generate.render``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from common import commands
from common.console import reports_errors
from common.numbers import seed_range
from generate.choices import (DEFAULT_GENERATOR, JPEG_ENCODERS, MAX_ANCHORS, MAX_BATCH_SIZE, MAX_GROUPS_PER_SHARD,
                              MAX_SAMPLING_STEPS, MAX_SHARDS, MAX_VIEWS, PRECISIONS)
from generate.sampling import DEFAULT_STRENGTH, VIEW_METHODS
from shards.card import UNKNOWN as UNKNOWN_LICENSE
from shards.schema import KEY_DIGITS

_COUNT = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")
_SCALE = {"": 1, "k": 10**3, "m": 10**6}


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
                   "along latent walks (steer), z + sigma*noise moved along them (gaussian+steer), or the "
                   "anchor's denoised latent re-noised and denoised again (renoise, diffusion generators).")
@click.option("--strength", type=float, default=None,
              help="How far renoise views are re-noised: the part of the sampler's steps, in (0, 1], each is "
                   f"denoised through again [default: {DEFAULT_STRENGTH:g} with --view-method renoise].")
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
@click.option("--sampling-steps", type=click.IntRange(1, MAX_SAMPLING_STEPS), default=None,
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
def main(**options: Any) -> None:
    """Render multiview groups (an anchor latent and its neighbours) into a WebDataset shard set."""
    from generate.render import render  # torch and the generators load only when a set is rendered

    render(**options)
