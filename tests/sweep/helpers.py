"""Helpers of the sweep tests: in-memory .mp4 and .npy files."""

from __future__ import annotations

import io

import numpy as np


def mp4_bytes(frames: np.ndarray, rate: int = 30) -> bytes:
    """Lossless-ish H.264 (crf 0, yuv420p) of uint8 grey frames (T, H, W)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "0"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
