"""The measurements of ``benchmarks/gpu_check.sh``, one section per call, each written as JSON.

    python -m benchmarks.gpu_check weights --out DIR [--smoke]   # random BigGAN weights, once
    python -m benchmarks.gpu_check SECTION --out DIR [--weights DIR] [--smoke]
    python -m benchmarks.gpu_check table --out DIR      # the short table of every section's figures

Sections: ``biggan`` (BigGAN-deep-256 forward in fp32, bf16, bf16 with the trimmed last
convolution, and with channels-last; whether trimming keeps fp32 bit-identical on this card; what
``--batch-size auto`` picks), ``compile`` (bf16+trim under torch.compile), ``job`` (the whole
job, GPU and CPU JPEG encoders, against its forward pass), ``jpeg`` (the CPU encoder pool against
nvJPEG), ``precision`` (bf16 and fp16 against fp32, benchmarks.precision_difference) and
``loader`` (training images/s with the CPU loader, with GPU decode and augmentation, and with a
batch held in memory, for resnet18 at 64 px and resnet50 at 128 and 224 px; and how far the GPU
path's views are from the CPU loader's for the same batch) and ``dit`` (DiT-XL/2-256 in the default
precision, 50 DDIM steps with guidance: the sampler alone against the whole job). BigGAN and DiT
run with random weights of the real architectures.

``--smoke`` runs every section on the CPU at a tiny size (a 32-px BigGAN, a 16-px loader, a one-layer
DiT on 8x8 latents in 2 steps), so that
the tests keep this script working on machines without a GPU; the GPU-only parts then record why
they were skipped.

The loader section measures the trainer's own input paths: ``train.data.build_loader`` as
``train/main.py`` builds it, and with ``gpu_augment`` its batches go through ``DeviceAugment`` on
the device before the step, as in ``train/main.py --gpu-augment``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import itertools
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from PIL import Image

from benchmarks.generate_throughput import forward_images_per_second, job_config, job_images_per_second
from benchmarks.precision_difference import compare_precisions
from benchmarks.train_throughput import images_per_second as training_images_per_second
from generate.batch_size import auto_batch_size
from generate.encoding import JpegEncoder, encode_on_gpu
from generate.generators import GeneratorError, GeneratorOptions, make_generator
from generate.generators.biggan import make_biggan
from generate.generators.diffusion import DiffusionGenerator, assemble
from generate.generators.runtime import default_precision
from generate.encoding import choose_encoder
from generate.job import ENCODE_THREADS, Partition, run_job
from tests.cli import tree_digest
from tests.random_biggan import BIGGAN_DEEP_CONFIGS, TINY_BIGGAN_CONFIG, write_random_biggan
from tests.random_dit import DIT_XL_2_256_TRANSFORMER, SD_VAE, TINY_TRANSFORMER, TINY_VAE, random_dit
from train.augment import AugmentConfig
from train.data import Batch, DeviceAugment, build_loader
from train.loop import training_step
from train.models import build_model
from train.optim import build_optimizer
from train.sources import open_sources

NAME = "biggan-deep-256"  # the registry name; the smoke check loads the tiny config under it
DIT_NAME = "dit-xl-2-256"  # the DiT section's, its tiny config too under --smoke


@dataclasses.dataclass(frozen=True)
class Sizes:
    device: str
    biggan_config: dict
    batch_size: int
    forward_groups: int  # groups of 2 views rendered per forward measurement
    job_groups: int
    jpeg_images: int
    precision_images: int
    loaders: tuple[tuple[str, int], ...]  # (backbone, image size)
    train_batch: int
    train_steps: int
    train_warmup: int
    workers: int
    dit_configs: tuple[dict, dict]  # (transformer, VAE)
    dit_steps: int
    dit_batch: int  # images per sampler call (guidance doubles what the transformer sees)
    dit_groups: int  # groups of 2 views rendered per measurement


FULL = Sizes(device="cuda", biggan_config=BIGGAN_DEEP_CONFIGS[NAME], batch_size=64, forward_groups=512,
             job_groups=1024, jpeg_images=512, precision_images=64,
             loaders=(("resnet18", 64), ("resnet50", 128), ("resnet50", 224)), train_batch=256,
             train_steps=8, train_warmup=3, workers=12, dit_configs=(DIT_XL_2_256_TRANSFORMER, SD_VAE), dit_steps=50,
             dit_batch=32, dit_groups=32)
SMOKE = Sizes(device="cpu", biggan_config=TINY_BIGGAN_CONFIG, batch_size=4, forward_groups=2, job_groups=4,
              jpeg_images=4, precision_images=2, loaders=(("convnet-small", 16),), train_batch=4,
              train_steps=1, train_warmup=1, workers=0, dit_configs=(TINY_TRANSFORMER, TINY_VAE), dit_steps=2,
              dit_batch=4, dit_groups=2)


def biggan(sizes: Sizes, weights: Path, **options: Any):
    """The BigGAN under test; ``trim`` picks the last convolution, the rest are GeneratorOptions."""
    trim = options.pop("trim")
    return make_biggan(NAME, GeneratorOptions(weights, torch.device(sizes.device), 1.0, **options),
                       trim_output=trim)


def forward_rate(sizes: Sizes, generator, scratch: Path) -> float:
    config = job_config(NAME, generator, sizes.forward_groups, sizes.batch_size, scratch / "unused")
    return forward_images_per_second(generator, config, torch.device(sizes.device))


def section_biggan(sizes: Sizes, weights: Path, scratch: Path) -> dict[str, Any]:
    cuda = sizes.device == "cuda"
    variants = {"fp32": {"precision": "fp32", "trim": False},
                "bf16": {"precision": "bf16", "trim": False},
                "bf16+trim": {"precision": "bf16", "trim": True}}
    if cuda:
        variants["bf16+trim+channels-last"] = {"precision": "bf16", "trim": True, "channels_last": True}
    figures: dict[str, Any] = {name: forward_rate(sizes, biggan(sizes, weights, **options), scratch)
                               for name, options in variants.items()}
    latents = torch.randn(sizes.batch_size, 128, generator=torch.Generator().manual_seed(0)).clamp(-2, 2)
    classes = torch.arange(sizes.batch_size)
    full, trimmed = (biggan(sizes, weights, precision="fp32", trim=trim)(latents, classes) for trim in (False, True))
    figures["fp32_trim_bit_identical"] = torch.equal(full, trimmed)
    started = time.perf_counter()
    default = biggan(sizes, weights, precision="bf16", trim=True)
    figures["auto_batch_size"] = auto_batch_size(default, default.resolution)
    figures["auto_batch_size_seconds"] = time.perf_counter() - started
    return figures


def section_compile(sizes: Sizes, weights: Path, scratch: Path) -> dict[str, Any]:
    try:
        generator = make_generator(NAME, GeneratorOptions(weights, torch.device(sizes.device), 1.0,
                                                          precision="bf16", compile=True))
        started = time.perf_counter()
        generator(torch.zeros(sizes.batch_size, 128), torch.zeros(sizes.batch_size, dtype=torch.int64))
        compile_seconds = time.perf_counter() - started
        return {"bf16+trim+compile": forward_rate(sizes, generator, scratch),
                "compile_seconds": compile_seconds}
    except GeneratorError as error:
        return {"skipped": str(error)}


def section_job(sizes: Sizes, weights: Path, scratch: Path) -> dict[str, Any]:
    generator = biggan(sizes, weights, precision="bf16", trim=True)
    figures: dict[str, Any] = {"forward": forward_rate(sizes, generator, scratch)}
    encoders = ["cuda", "cpu"] if sizes.device == "cuda" else ["cpu"]
    for encoder in encoders:
        config = job_config(NAME, generator, sizes.job_groups, sizes.batch_size, scratch / f"job-{encoder}")
        rate = job_images_per_second(generator, dataclasses.replace(config, jpeg_encoder=encoder))
        figures[f"job_{encoder}_jpeg"] = rate
        figures[f"job_{encoder}_jpeg_over_forward"] = rate / figures["forward"]
    figures.update(determinism(sizes, generator, encoders[0], scratch))
    return figures


def determinism(sizes: Sizes, generator, encoder: str, scratch: Path) -> dict[str, bool]:
    """Whether a small set comes out byte-identical when made again, and with another batch size."""
    def digest(name: str, batch_size: int) -> dict[str, str]:
        config = job_config(NAME, generator, 8 * sizes.batch_size, batch_size, scratch / name)
        run_job(generator, dataclasses.replace(config, jpeg_encoder=encoder, groups_per_shard=sizes.batch_size),
                Partition(), ["determinism"], show_progress=False)
        return tree_digest(scratch / name)

    first = digest("first", sizes.batch_size)
    return {"set_identical_when_made_again": digest("again", sizes.batch_size) == first,
            "set_identical_at_another_batch_size": digest("other-batch", sizes.batch_size // 2 + 1) == first}


def section_jpeg(sizes: Sizes, weights: Path, scratch: Path) -> dict[str, Any]:
    generator = biggan(sizes, weights, precision="bf16", trim=True)
    latents = torch.randn(sizes.jpeg_images, 128).clamp(-2, 2)
    images = generator(latents, torch.arange(sizes.jpeg_images) % 1000)
    figures: dict[str, Any] = {"threads": ENCODE_THREADS}
    with ThreadPoolExecutor(ENCODE_THREADS) as pool:
        started = time.perf_counter()
        on_cpu = JpegEncoder("cpu", 95, pool).start(images)()
        figures["cpu_pool_images_per_s"] = len(on_cpu) / (time.perf_counter() - started)
    if sizes.device != "cuda":
        figures["gpu"] = "skipped: no CUDA device"
        return figures
    encode_on_gpu(images[:2], 95)  # warm-up: nvJPEG's handles
    torch.cuda.synchronize()
    started = time.perf_counter()
    on_gpu = encode_on_gpu(images, 95)
    figures["gpu_images_per_s"] = len(on_gpu) / (time.perf_counter() - started)
    decoded = torch.stack([torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
                           .permute(2, 0, 1) for data in on_gpu])  # PIL must read nvJPEG's files
    figures["gpu_mean_abs_error"] = (decoded.float() - images.cpu().float()).abs().mean().item()
    figures["gpu_bytes_over_cpu_bytes"] = sum(map(len, on_gpu)) / sum(map(len, on_cpu))
    return figures


def section_precision(sizes: Sizes, weights: Path, scratch: Path) -> dict[str, Any]:
    precisions = ["bf16", "fp16"] if sizes.device == "cuda" else ["bf16"]
    return compare_precisions(NAME, weights, torch.device(sizes.device), precisions,
                              sizes.precision_images)


def trainer_batches(location: str, sizes: Sizes, config: AugmentConfig, device: torch.device,
                    gpu_augment: bool) -> Iterator[Batch]:
    """One epoch of the trainer's input on ``device``: the CPU loader, or --gpu-augment's."""
    torch.manual_seed(0)  # without workers the loader draws from this process: the same draws for both paths
    loader = build_loader(open_sources([location]), batch_size=sizes.train_batch, views=2, augment=config,
                          num_workers=sizes.workers, pin_memory=device.type == "cuda", gpu_augment=gpu_augment)
    if not gpu_augment:
        return loader.epoch(0)
    return map(DeviceAugment(config, device, skip_corrupt=False), loader.epoch(0))


def view_difference(on_cpu: Batch, on_device: Batch) -> dict[str, Any]:
    """How far --gpu-augment's views are from the CPU loader's for the same batch of the epoch (the
    same groups and parameters), in levels of 255."""
    if not torch.equal(on_cpu.group_ids, on_device.group_ids):
        return {"views_differ": "skipped: the two loaders gave other groups"}
    difference = (on_device.images.cpu().int() - on_cpu.images.int()).abs().float()
    return {"views_mean_difference": difference.mean().item(), "views_max_difference": difference.max().item()}


def render_set(folder: Path, groups: int, image_size: int, sizes: Sizes) -> str:
    """A one-view set, in enough shards for every loader worker to have two."""
    per_shard = max(1, groups // (2 * max(1, sizes.workers)))
    subprocess.run([sys.executable, "-m", "generate", "--n-anchors", str(groups), "--view-method", "none",
                    "--image-size", str(image_size), "--device", sizes.device, "--groups-per-shard",
                    str(per_shard), "--out", str(folder), "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    return str(folder)


def section_loader(sizes: Sizes, weights: Path, scratch: Path) -> dict[str, Any]:
    device = torch.device(sizes.device)
    cuda = device.type == "cuda"
    figures = {}
    for backbone, image_size in sizes.loaders:
        groups = sizes.train_batch * (sizes.train_steps + sizes.train_warmup + 2)
        location = render_set(scratch / f"set-{image_size}", groups, image_size, sizes)
        config = AugmentConfig(crop_size=image_size)
        torch.manual_seed(0)
        model = build_model(backbone, small_images=image_size <= 64).to(device)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer("sgd", model, lr=0.01, weight_decay=1e-4)
        precision = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

        def step(batch: Batch) -> torch.Tensor:
            return training_step(model, optimizer, batch, supervised=False, temperature=0.1,
                                 precision=precision, channels_last=cuda)

        def rate(batches: Iterable[Batch]) -> float:
            return training_images_per_second(batches, step, sizes.train_steps, sizes.train_warmup)

        from_cpu_loader = trainer_batches(location, sizes, config, device, gpu_augment=False)
        row = {"cpu_loader": rate(from_cpu_loader)}
        held = next(from_cpu_loader)  # the epoch holds two batches more than the measurement takes
        from_gpu_augment = trainer_batches(location, sizes, config, device, gpu_augment=True)
        row["gpu_augment"] = rate(from_gpu_augment)
        row.update(view_difference(held, next(from_gpu_augment)))
        row["in_memory"] = rate(itertools.repeat(held))
        figures[f"{backbone}-{image_size}px"] = row
    return figures


def section_dit(sizes: Sizes, weights: Path, scratch: Path) -> dict[str, Any]:
    """DiT-XL/2-256 as ``generate --generator dit-xl-2-256`` runs it (default precision and guidance),
    built in memory: the sampler alone on the job's batches against the whole job."""
    device = torch.device(sizes.device)
    started = time.perf_counter()
    transformer, vae, scheduler = random_dit(*sizes.dit_configs, device=sizes.device)
    generator = DiffusionGenerator(DIT_NAME, assemble(transformer, vae, scheduler, "random"), GeneratorOptions(
        None, device, 1.0, precision=default_precision(device), sampling_steps=sizes.dit_steps))
    figures: dict[str, Any] = {"build_seconds": time.perf_counter() - started, "precision": generator.precision,
                               "steps": generator.steps, "guidance": generator.guidance, "batch_size": sizes.dit_batch}
    config = job_config(DIT_NAME, generator, sizes.dit_groups, sizes.dit_batch, scratch / "dit")
    figures["sampler"] = forward_images_per_second(generator, config, device)
    figures["jpeg_encoder"] = choose_encoder("auto", device)
    figures["job"] = job_images_per_second(generator, dataclasses.replace(config, jpeg_encoder=figures["jpeg_encoder"]))
    figures["job_over_sampler"] = figures["job"] / figures["sampler"]
    return figures


SECTIONS: dict[str, Callable[[Sizes, Path, Path], dict[str, Any]]] = {
    "biggan": section_biggan, "compile": section_compile, "job": section_job, "jpeg": section_jpeg,
    "precision": section_precision, "loader": section_loader, "dit": section_dit}


def run_section(section: str, sizes: Sizes, weights: Path, out: Path) -> dict[str, Any]:
    """Measure one section with BigGAN ``weights`` and write its figures to OUT/SECTION.json."""
    with tempfile.TemporaryDirectory() as scratch:
        figures = SECTIONS[section](sizes, weights, Path(scratch))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{section}.json").write_text(json.dumps(figures, indent=2))
    return figures


def read(out: Path, section: str) -> dict[str, Any]:
    path = out / f"{section}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def number(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "missing"


def table(out: Path) -> str:
    """The short table: every figure the issue asks for, 'missing' where a section did not finish."""
    forward, compiled, job = read(out, "biggan"), read(out, "compile"), read(out, "job")
    jpeg, loader, dit = read(out, "jpeg"), read(out, "loader"), read(out, "dit")
    rows = ["| BigGAN-deep-256 (random weights) | images/s |", "|---|---|"]
    for variant in ("fp32", "bf16", "bf16+trim", "bf16+trim+channels-last"):
        rows.append(f"| forward {variant} | {number(forward.get(variant))} |")
    rows.append(f"| forward bf16+trim+compile | {number(compiled.get('bf16+trim+compile'))} "
                f"{compiled.get('skipped', '')}|")
    for encoder in ("cuda", "cpu"):
        rows.append(f"| whole job, bf16+trim, {encoder} JPEG (job/forward "
                    f"{number(job.get(f'job_{encoder}_jpeg_over_forward'), 2)}) | "
                    f"{number(job.get(f'job_{encoder}_jpeg'))} |")
    rows.append(f"| JPEG encode: CPU pool / nvJPEG | {number(jpeg.get('cpu_pool_images_per_s'))} / "
                f"{number(jpeg.get('gpu_images_per_s'))} |")
    rows.append(f"| fp32 trim bit-identical; --batch-size auto | {forward.get('fp32_trim_bit_identical', 'missing')}; "
                f"{forward.get('auto_batch_size', 'missing')} |")
    rows.append(f"| set identical made again; at another batch size | "
                f"{job.get('set_identical_when_made_again', 'missing')}; "
                f"{job.get('set_identical_at_another_batch_size', 'missing')} |")
    rows += ["", f"| DiT-XL/2-256 (random weights), {dit.get('steps', 'missing')} steps, guidance "
                 f"{dit.get('guidance', 'missing')}, {dit.get('precision', 'missing')}, batch "
                 f"{dit.get('batch_size', 'missing')} | images/s |", "|---|---|",
             f"| sampler alone | {number(dit.get('sampler'), 2)} |",
             f"| whole job, {dit.get('jpeg_encoder', 'missing')} JPEG (job/sampler "
             f"{number(dit.get('job_over_sampler'), 2)}) | {number(dit.get('job'), 2)} |"]
    rows += ["", "| training | CPU loader | GPU augment | in memory | CPU / memory | GPU aug / memory "
                 "| GPU aug views - CPU's, mean / max levels |", "|---|---|---|---|---|---|---|"]
    for name, row in loader.items():
        memory = row["in_memory"]
        rows.append(f"| {name} | {row['cpu_loader']:.1f} | {row['gpu_augment']:.1f} | {memory:.1f} | "
                    f"{row['cpu_loader'] / memory:.2f} | {row['gpu_augment'] / memory:.2f} | "
                    f"{number(row.get('views_mean_difference'), 3)} / {number(row.get('views_max_difference'), 0)} "
                    f"{row.get('views_differ', '')}|")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=["weights", *SECTIONS, "table"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", type=Path, help="random BigGAN weights written by the weights step")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else FULL
    if args.section == "table":
        print(table(args.out))
    elif args.section == "weights":
        write_random_biggan(args.out, sizes.biggan_config)
    elif args.weights:
        print(json.dumps(run_section(args.section, sizes, args.weights, args.out), indent=2))
    else:
        with tempfile.TemporaryDirectory() as scratch:
            weights = write_random_biggan(Path(scratch) / "weights", sizes.biggan_config)
            print(json.dumps(run_section(args.section, sizes, weights, args.out), indent=2))


if __name__ == "__main__":
    main()
