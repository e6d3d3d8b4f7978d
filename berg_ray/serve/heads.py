"""Readout heads: per-scan readouts applied to the core's features, multiplexed by scan id.

One deployment serves every scan through ``@serve.multiplexed``: a readout is 522 x U float32 values (at most
~21 MB for the largest released scan), so one replica can hold all 13 and the multiplexing cache never evicts.
``heads: per_scan`` instead binds one deployment of this class per scan (each then holds a single readout).
"""

from __future__ import annotations

import asyncio
import warnings

import numpy as np
import torch
from ray import serve

from berg_ray.checkpoint.release import load_readout
from berg_ray.config import SCAN_FIELDS
from berg_ray.download import resolve_berg_dir
from berg_ray.storage.s3 import s3_options_for
from berg_ray.model.readout import Readout
from berg_ray.runtime.threads import set_torch_threads


class ReadoutServer:
    """Features (T, 512, 16, 24) of one video -> responses (T, U') of the scan named by the multiplexed model id."""

    def __init__(self, berg_dir: str, s3_endpoint_url: str | None = None) -> None:
        set_torch_threads()  # the CPUs Ray reserved for this replica
        self._berg_dir = resolve_berg_dir(berg_dir, s3_options_for(berg_dir, s3_endpoint_url))

    @serve.multiplexed(max_num_models_per_replica=len(SCAN_FIELDS))
    async def _load(self, scan_id: str) -> Readout:
        # The scan's readout alone (never the core). Heads run on CPU: gathering U positions is ~10 MFLOP per
        # frame, cheaper than moving features to a GPU.
        return await asyncio.to_thread(load_readout, self._berg_dir, scan_id)

    async def __call__(self, features: np.ndarray, units: np.ndarray | None) -> np.ndarray:
        """Args: features float32 or float16 (T, 512, 16, 24); units int64 readout indices or None (all).
        Returns: float32 responses (T, U')."""
        scan_id = serve.get_multiplexed_model_id()
        readout = await self._load(scan_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zero-copy view of a read-only object-store buffer
            x = torch.from_numpy(features)
        index = None if units is None else torch.from_numpy(np.asarray(units, dtype=np.int64))
        with torch.inference_mode():
            return readout(x.float(), index).numpy()  # frames as the batch: (T, 512, 16, 24) -> (T, U')

    async def ready(self) -> str:
        """Load the readout of the multiplexed scan id (if not yet loaded) and return the id."""
        scan_id = serve.get_multiplexed_model_id()
        await self._load(scan_id)
        return scan_id
