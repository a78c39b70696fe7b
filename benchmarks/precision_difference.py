"""What --precision trades: bf16 (and fp16, on CUDA) against fp32 on the same latents and classes.

Random weights of the real BigGAN-deep architecture (``tests/random_biggan.py``), uint8 images as
the generator returns them (before JPEG). ``--channel-width`` narrows every layer (the published
models have 128) so that a CPU finishes in a minute; the layer structure stays the real one.

    python -m benchmarks.precision_difference [--generator biggan-deep-128] [--channel-width 32]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from generate.render import choose_device
from generate.generators import GeneratorOptions
from generate.generators.biggan import make_biggan
from tests.random_biggan import BIGGAN_DEEP_CONFIGS, write_random_biggan

TRUNCATION = 1.0


def random_weights(name: str, channel_width: int, folder: Path) -> Path:
    return write_random_biggan(folder, {**BIGGAN_DEEP_CONFIGS[name], "channel_width": channel_width})


def timed_render(generator, latents: torch.Tensor, classes: torch.Tensor,
                 device: torch.device) -> tuple[torch.Tensor, float]:
    """The images and the images/s of one pass (after a warm-up of one image)."""
    generator(latents[:1], classes[:1])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    images = generator(latents, classes)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return images.cpu(), len(latents) / (time.perf_counter() - start)


def compare_precisions(name: str, weights: Path, device: torch.device, precisions: list[str],
                       count: int) -> dict[str, dict[str, float]]:
    """Per precision: mean and max absolute difference from fp32 in levels of 255, the share of
    pixels that differ, and images/s. Every precision trims the last convolution alike."""
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(count, BIGGAN_DEEP_CONFIGS[name]["z_dim"], generator=generator)
    latents = latents.clamp(-2.0, 2.0) * TRUNCATION
    classes = torch.randint(0, 1000, (count,), generator=generator)
    rendered = {}
    for precision in ["fp32", *precisions]:
        options = GeneratorOptions(weights, device, TRUNCATION, precision=precision)
        rendered[precision] = timed_render(make_biggan(name, options, trim_output=True),
                                           latents, classes, device)
    reference = rendered["fp32"][0].float()
    figures = {}
    for precision, (images, rate) in rendered.items():
        difference = (images.float() - reference).abs()
        figures[precision] = {"mean_abs": difference.mean().item(), "max_abs": difference.max().item(),
                              "share_differing": (difference > 0).float().mean().item(),
                              "images_per_s": rate}
    return figures


def table(figures: dict[str, dict[str, float]]) -> str:
    rows = ["| precision | mean abs diff (levels of 255) | max abs diff | pixels differing | images/s |",
            "|---|---|---|---|---|"]
    rows += [f"| {precision} | {row['mean_abs']:.3f} | {row['max_abs']:.0f} | "
             f"{100 * row['share_differing']:.1f}% | {row['images_per_s']:.1f} |"
             for precision, row in figures.items()]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="biggan-deep-128", choices=sorted(BIGGAN_DEEP_CONFIGS))
    parser.add_argument("--channel-width", type=int, default=128, help="128: the published width")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    device = choose_device(args.device)
    precisions = ["bf16", "fp16"] if device.type == "cuda" else ["bf16"]
    with tempfile.TemporaryDirectory() as scratch:
        weights = random_weights(args.generator, args.channel_width, Path(scratch))
        figures = compare_precisions(args.generator, weights, device, precisions, args.images)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print(f"\n{args.generator} architecture, channel width {args.channel_width}, random weights, "
          f"{args.images} images, {device}, {torch.get_num_threads()} threads")
    print(table(figures))


if __name__ == "__main__":
    main()
