"""JPEG encoding of rendered batches, with the encoder chosen by the device the images are on.

``cpu``: the images come to the host (into pinned memory, without waiting for the GPU, when they
were rendered on one) and PIL (libjpeg) encodes them in a pool of threads, as it always has.
``cuda``: ``torchvision.io.encode_jpeg`` encodes the batch on the GPU (nvJPEG) and only the
compressed bytes cross to the host. Both use the set's quality setting and PIL decodes both; the
bytes differ, as two encoders' do (and as images rendered on a GPU differ from the CPU's anyway).
"""

from __future__ import annotations

import functools
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch
from PIL import Image

from common.errors import UserError
from generate.choices import JPEG_ENCODERS

# Work handed to the writer thread: it returns the batch's encoded images, in order.
EncodedBatch = Callable[[], list[bytes]]


class EncoderError(UserError):
    """An encoder that cannot run where the images are; one sentence."""


def choose_encoder(name: str, device: torch.device) -> str:
    """``cpu`` or ``cuda`` for ``--jpeg-encoder name`` with images rendered on ``device``."""
    if name not in JPEG_ENCODERS:
        raise EncoderError(f"Unknown JPEG encoder {name!r}; choose one of {', '.join(JPEG_ENCODERS)}.")
    if name == "auto":
        return "cuda" if device.type == "cuda" else "cpu"
    if name == "cuda" and device.type != "cuda":
        raise EncoderError("--jpeg-encoder cuda encodes the images on the GPU that renders them; it "
                           f"needs --device cuda, not the {device.type} device.")
    return name


def encode_jpeg(image: torch.Tensor, quality: int) -> bytes:
    """One uint8 [3, H, W] CPU image as JPEG bytes, by PIL."""
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def encode_on_gpu(images: torch.Tensor, quality: int) -> list[bytes]:
    """uint8 [N, 3, H, W] CUDA images as JPEG bytes, encoded as one batch by nvJPEG."""
    from torchvision.io import encode_jpeg as encode_batch

    encoded = encode_batch(list(images), quality=quality)
    joined = torch.cat(encoded).cpu().numpy().tobytes()  # one copy to the host, not one per image
    views, start = [], 0
    for data in encoded:
        views.append(joined[start:start + len(data)])
        start += len(data)
    return views


def to_host(images: torch.Tensor) -> Callable[[], torch.Tensor]:
    """Start moving images to the host; the callable returns them once they are there.

    From a GPU the copy goes into pinned memory without blocking, so the next batch is launched
    while this one is still copying; the writer thread waits for it, not the render loop."""
    if images.device.type != "cuda":
        return images.cpu  # the tensor itself when it is on the CPU already
    host = torch.empty(images.shape, dtype=images.dtype, pin_memory=True)
    host.copy_(images, non_blocking=True)
    copied = torch.cuda.Event()
    copied.record()

    def arrived() -> torch.Tensor:
        copied.synchronize()
        return host
    return arrived


class JpegEncoder:
    """``encoder.start(images)`` in the render loop; the returned work, run in the writer thread,
    gives the batch's JPEG bytes."""

    def __init__(self, kind: str, quality: int, pool: ThreadPoolExecutor):
        self.kind, self.quality, self.pool = kind, quality, pool

    def start(self, images: torch.Tensor) -> EncodedBatch:
        if self.kind == "cuda":
            views = encode_on_gpu(images, self.quality)
            return lambda: views
        arrived = to_host(images)
        encode = functools.partial(encode_jpeg, quality=self.quality)
        return lambda: list(self.pool.map(encode, arrived()))
