"""How a generator runs on its device: its numeric precision and the CUDA-only speed options.

``fp32`` is full precision and the reference: the bytes every set had before precisions existed
(``deadleaves`` and ``cgan`` even compute in float64, so that the batch size cannot change a byte).
``bf16`` and ``fp16`` run the matrix work (convolutions, linear layers) under ``torch.autocast``,
which keeps normalisation and the other element-wise steps in float32: faster on GPUs, and images
that differ from fp32 by a few levels (``benchmarks/precision_difference.py`` measures by how much).
fp16 needs CUDA; bf16 also runs on the CPU (slowly, unless the CPU has bf16 instructions), so that
a GPU's bf16 set can be previewed and tested anywhere.

Channels-last, cuDNN autotuning and ``torch.compile`` change only speed (and, on CUDA, the last
bits of an image, as a different kernel rounds differently); they are refused off CUDA.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager

import torch

from generate.generators.base import PRECISIONS, GeneratorError, GeneratorOptions

FULL_PRECISION = "fp32"
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def default_precision(device: torch.device) -> str:
    """bf16 on a CUDA device that has it, else fp32."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return FULL_PRECISION


def precision_of(generator: Any) -> str:
    """The precision a generator says it renders in; one that says nothing renders in fp32."""
    return getattr(generator, "precision", None) or FULL_PRECISION


def check_runtime(options: GeneratorOptions) -> None:
    """Refuse, in one sentence, a precision or speed option that the device cannot run."""
    precision, device = options.precision or FULL_PRECISION, options.device
    if precision not in PRECISIONS:
        raise GeneratorError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if precision == "fp16" and device.type != "cuda":
        raise GeneratorError("--precision fp16 needs a CUDA device; on the CPU use fp32 or bf16.")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise GeneratorError("This CUDA device has no bf16 support; use --precision fp16 or fp32.")
    cuda_only = [flag for flag, asked in (("--channels-last", options.channels_last),
                                          ("--cudnn-benchmark", options.cudnn_benchmark),
                                          ("--compile", options.compile)) if asked]
    if cuda_only and device.type != "cuda":
        several = len(cuda_only) > 1
        raise GeneratorError(f"{' and '.join(cuda_only)} {'speed' if several else 'speeds'} up CUDA "
                             f"generation only; drop {'them' if several else 'it'} on the "
                             f"{device.type} device.")
    if options.compile and not _has_triton():
        raise GeneratorError("--compile needs Triton (pip install triton), which this Python lacks; "
                             "run without --compile.")


def apply_process_settings(options: GeneratorOptions) -> None:
    """Settings that belong to the process rather than to one network."""
    if options.device.type == "cuda":
        torch.backends.cudnn.benchmark = options.cudnn_benchmark


def autocast(precision: str, device: torch.device) -> ContextManager:
    """The context a forward pass in ``precision`` runs in (nothing for fp32)."""
    if precision == FULL_PRECISION:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])


def prepare_network(network: torch.nn.Module, options: GeneratorOptions) -> Callable[..., Any]:
    """``network`` laid out channels-last and compiled when the options ask; the callable to use."""
    if options.channels_last:
        network.to(memory_format=torch.channels_last)
    return CompiledNetwork(network) if options.compile else network


class CompiledNetwork:
    """``torch.compile(network)``; compilation happens at the first call, so a failure there (no
    compiler, an unsupported operation) becomes one sentence instead of a page of traceback."""

    def __init__(self, network: torch.nn.Module):
        self.compiled = torch.compile(network, dynamic=False)
        self.working = False

    def __call__(self, *args: Any) -> Any:
        if self.working:
            return self.compiled(*args)
        try:
            result = self.compiled(*args)
        except Exception as error:  # the compiler stack raises many types; none is the user's bug
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise GeneratorError(f"torch.compile failed on this machine ({type(error).__name__}: "
                                 f"{first_line}); run without --compile.") from None
        self.working = True
        return result


def _has_triton() -> bool:
    try:
        from torch.utils._triton import has_triton
    except ImportError:
        return False
    return has_triton()
