"""Choice of the torch device: the one place ``"auto"`` is resolved."""

from __future__ import annotations

import torch

from berg_ray.errors import DeviceError


def resolve_device(spec: "str | torch.device" = "auto") -> torch.device:
    """Turn a device spec into a usable torch.device.

    Args:
        spec: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N", or a torch.device.

    Raises:
        DeviceError: the spec is malformed or names a device this machine does not have.
    """
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise DeviceError(f"device {spec!r} is not a device name; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise DeviceError(f"device {spec!r} is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} requested but CUDA is not available on this machine; use 'cpu' or 'auto'")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"device {spec!r} does not exist; this machine has {torch.cuda.device_count()} CUDA devices")
    return device
