"""Numeric precision of the model: the one place where TF32 flags and autocast are decided.

``float32`` (the default) is exact IEEE float32 everywhere - TF32 explicitly off for cuBLAS *and* cuDNN (cuDNN's
convolutions default to TF32 on Ampere and newer) - and matches the reference implementation to ~3e-7.
``tf32`` keeps float32 tensors but lets matmuls and convolutions use TF32 tensor cores (CUDA, compute capability
8.0+). ``bfloat16`` runs the model under ``torch.autocast(dtype=torch.bfloat16)`` (CUDA with bf16 support, or CPU):
weights and activations of matmuls/convolutions in bf16, the LSTM cell state, the readout's exp and the returned
responses in float32. Measured agreement of each mode with float32: the docs page "Numerics and performance" (docs/numerics.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from berg_ray.errors import PrecisionError

from berg_ray.config import DEFAULT_PRECISION, PRECISIONS

__all__ = ["DEFAULT_PRECISION", "PRECISIONS", "check_precision", "precision_mode"]


def check_precision(precision: object, device: torch.device) -> str:
    """Return ``precision`` if ``device`` can run it, else raise PrecisionError naming the fix.

    Args:
        precision: one of PRECISIONS.
        device: the resolved torch device the model runs on.
    """
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise PrecisionError(f"precision {precision!r} is not supported; use one of {', '.join(PRECISIONS)}")
    if precision == "tf32" and (device.type != "cuda" or torch.cuda.get_device_capability(device)[0] < 8):
        where = "the CPU" if device.type != "cuda" else f"{torch.cuda.get_device_name(device)} (before Ampere)"
        raise PrecisionError(f"precision 'tf32' needs an NVIDIA GPU of compute capability 8.0 or newer; {where} "
                             "cannot run it; use 'float32' or 'bfloat16'")
    if precision == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PrecisionError(f"precision 'bfloat16' is not supported by {torch.cuda.get_device_name(device)}; "
                             "use 'float32'")
    return precision


@contextlib.contextmanager
def precision_mode(precision: str, device: torch.device) -> Iterator[None]:
    """Run the enclosed model code in ``precision`` on ``device`` (TF32 flags set and restored; bf16 autocast)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if precision == "bfloat16"
                else contextlib.nullcontext())
    try:
        with autocast:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
