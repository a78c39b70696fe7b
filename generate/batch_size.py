"""``--batch-size auto``: on CUDA, the fastest batch size that fits, measured; elsewhere a fixed one.

A set's images never depend on the batch size on the CPU (the built-in generators compute so that
they do not), so there a fixed size is as good as any. On a GPU the size decides the speed: the
search renders a couple of batches at growing sizes and stops at the first that does not fit or
is no faster than the best so far.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Sequence

import numpy as np
import torch

from generate.generators import Generator, GeneratorError
from generate.job import OutOfMemory, generator_device, render

CPU_BATCH_SIZE = 64
CANDIDATES = (16, 32, 64, 128, 256, 512, 1024)
TIMED_BATCHES = 2
# A size must beat the best so far by this factor to be taken: larger batches hold more memory
# and delay the first shard for no gain.
MIN_GAIN = 1.03


def auto_batch_size(generator: Generator, image_size: int) -> int:
    """The batch size ``--batch-size auto`` means for this generator on its device."""
    if generator_device(generator).type != "cuda":
        return CPU_BATCH_SIZE
    return fastest_batch_size(lambda size: images_per_second(generator, image_size, size), CANDIDATES)


def fastest_batch_size(rate: Callable[[int], float], candidates: Sequence[int]) -> int:
    """The candidate with the best ``rate(size)`` (images/s), trying sizes in increasing order
    until one runs out of memory or gains less than MIN_GAIN over the best so far."""
    best, best_rate = None, 0.0
    for size in candidates:
        try:
            measured = rate(size)
        except OutOfMemory:
            torch.cuda.empty_cache()  # give back what the failed size held (a no-op without CUDA)
            break
        if measured < best_rate * MIN_GAIN:
            break
        best, best_rate = size, measured
    if best is None:
        raise GeneratorError(f"Not even a batch of {candidates[0]} images fits on the device; give "
                             "a smaller --batch-size.")
    return best


def images_per_second(generator: Generator, image_size: int, size: int) -> float:
    """Render throughput at one batch size, after a warm-up batch (latents and classes as the job
    draws them)."""
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((size, generator.latent_dim)).clip(-2, 2).astype(np.float32)
    classes = rng.integers(0, generator.num_classes, size) if generator.num_classes else None
    device = generator_device(generator)
    # A sampler may time a shorter schedule that ranks sizes alike (DiffusionGenerator.timing_probe).
    with getattr(generator, "timing_probe", contextlib.nullcontext)():
        render(generator, latents, classes, image_size)
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(TIMED_BATCHES):
            render(generator, latents, classes, image_size)
        _synchronize(device)
        return TIMED_BATCHES * size / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
