"""Generation throughput: forward-only images/s against the whole job (render, encode, write).

A ratio near 1.0 means encoding and writing hide behind the next batch's forward pass. BigGAN runs
with random weights of the real architecture (no download needed); ``diffusers`` is the tests' tiny
random-weight DiT (tests.random_dit), sampled in 50 steps, with gaussian or (``--view-method
renoise``) re-noised views. The memory check runs the job as a subprocess at two set sizes and
compares peak resident memory.

    python -m benchmarks.generate_throughput [--generators deadleaves,biggan-deep-128,diffusers] [--device auto]
        [--view-method gaussian|renoise]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from generate.render import choose_device
from generate.generators import GeneratorOptions, make_generator
from generate.job import JobConfig, Partition, render, run_job
from generate.sampling import DEFAULT_STRENGTH, ViewSpec
from tests.random_biggan import BIGGAN_DEEP_CONFIGS, write_random_biggan
from tests.random_dit import write_random_dit

VIEWS = 2
VIEW_SPECS = {"gaussian": ViewSpec("gaussian", VIEWS, sigma=0.2, truncation=1.0),
              "renoise": ViewSpec("renoise", VIEWS, sigma=0.2, truncation=1.0, strength=DEFAULT_STRENGTH)}


def make(name: str, device: torch.device, scratch: Path):
    weights = None
    if name.startswith("biggan"):
        weights = scratch / name
        write_random_biggan(weights, BIGGAN_DEEP_CONFIGS[name])
    elif name == "diffusers":
        weights = write_random_dit(scratch / name)
    return make_generator(name, GeneratorOptions(weights=weights, device=device, truncation=1.0))


def job_config(name: str, generator, anchors: int, batch_size: int, out: Path, method: str = "gaussian") -> JobConfig:
    return JobConfig(generator=name, n_anchors=anchors, views=VIEW_SPECS[method],
                     classes=list(range(generator.num_classes)), seed=0,
                     image_size=generator.resolution, quality=95, groups_per_shard=anchors,
                     batch_size=batch_size, out=out)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_images_per_second(generator, config: JobConfig, device: torch.device) -> float:
    """The generator alone on the job's batches (latents and classes as the job draws them; whole groups
    of renoise views)."""
    size = config.render_batch
    latent = torch.randn(size, generator.latent_dim).numpy()
    classes = torch.randint(0, generator.num_classes, (size,)).numpy() if generator.num_classes else None
    render(generator, latent, classes, config.image_size, config.views)  # warm-up
    batches = -(-config.n_anchors * VIEWS // size)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(batches):
        render(generator, latent, classes, config.image_size, config.views)
    synchronize(device)
    return batches * size / (time.perf_counter() - start)


def job_images_per_second(generator, config: JobConfig) -> float:
    start = time.perf_counter()
    run_job(generator, config, Partition(), ["benchmark"], show_progress=False)
    return config.n_anchors * VIEWS / (time.perf_counter() - start)


def peak_memory_mib(anchors: int, out: Path) -> float:
    """Peak resident memory of a whole ``python -m generate`` process."""
    process = subprocess.Popen([sys.executable, "-m", "generate", "--n-anchors", str(anchors),
                                "--views", str(VIEWS), "--image-size", "32", "--out", str(out),
                                "--no-progress"], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"python -m generate failed with status {status}")
    return usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generators", default="deadleaves,biggan-deep-128")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--anchors", default="deadleaves=512,biggan-deep-128=24,biggan-deep-256=8",
                        help="groups rendered per generator, as name=count")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--view-method", default="gaussian", choices=list(VIEW_SPECS),
                        help="renoise: diffusion generators only")
    parser.add_argument("--memory-anchors", default="2000,20000",
                        help="two set sizes for the peak-memory check; empty to skip it")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    device = choose_device(args.device)
    anchors = {name: int(count) for name, count in
               (item.split("=") for item in args.anchors.split(","))}

    rows, figures = [], {"device": str(device), "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.generators.split(","):
            generator = make(name, device, Path(scratch))
            config = job_config(name, generator, anchors.get(name, 64), args.batch_size,
                                Path(scratch) / f"set-{name}", args.view_method)
            forward = forward_images_per_second(generator, config, device)
            whole = job_images_per_second(generator, config)
            rows.append(f"| {name} | {generator.resolution} | {forward:.1f} | {whole:.1f} | "
                        f"{whole / forward:.2f} |")
            figures[name] = {"forward_images_per_s": forward, "job_images_per_s": whole,
                             "ratio": whole / forward, "resolution": generator.resolution}
        memory_rows = []
        if args.memory_anchors:
            sizes = [int(size) for size in args.memory_anchors.split(",")]
            peaks = [peak_memory_mib(size, Path(scratch) / f"memory-{size}") for size in sizes]
            memory_rows = [f"| peak RSS, {size} anchors (deadleaves, 32 px) | {peak:.0f} MiB |"
                           for size, peak in zip(sizes, peaks)]
            memory_rows.append(f"| ratio {sizes[-1]} / {sizes[0]} anchors | {peaks[-1] / peaks[0]:.3f} |")
            figures["peak_rss_mib"] = dict(zip(map(str, sizes), peaks))

    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print(f"\ndevice {device}, batch {args.batch_size}, {VIEWS} {args.view_method} views per group, "
          f"{torch.get_num_threads()} threads")
    print("| generator | px | forward images/s | job images/s | job / forward |\n|---|---|---|---|---|")
    print("\n".join(rows))
    if memory_rows:
        print("\n| memory | |\n|---|---|")
        print("\n".join(memory_rows))


if __name__ == "__main__":
    main()
