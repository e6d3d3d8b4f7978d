"""Helpers of the sweep tests: in-memory .mp4 and .npy files."""

from __future__ import annotations

import io
from fractions import Fraction

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


def timed_mp4_bytes(frames: np.ndarray, seconds: list[float]) -> bytes:
    """H.264 .mp4 whose frame i is shown from ``seconds[i]`` on (time base 1/30 s): long gaps make tiny files."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 30)
        for frame, second in zip(frames, seconds):
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")
            video_frame.pts, video_frame.time_base = int(round(second * 30)), Fraction(1, 30)
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def mixed_size_mkv_bytes(first: np.ndarray, second: np.ndarray) -> bytes:
    """MJPEG .mkv whose frames change size: frames of ``first`` (T, H, W), then of ``second`` (T2, H2, W2)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        stream = container.add_stream("mjpeg", rate=30)
        stream.width, stream.height, stream.pix_fmt = first.shape[2], first.shape[1], "yuvj420p"
        other = av.CodecContext.create("mjpeg", "w")
        other.width, other.height, other.pix_fmt = second.shape[2], second.shape[1], "yuvj420p"
        other.time_base = stream.codec_context.time_base = Fraction(1, 30)
        for index, (context, frame) in enumerate([(stream, f) for f in first] + [(other, f) for f in second]):
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray").reformat(
                format="yuvj420p")
            video_frame.pts, video_frame.time_base = index, Fraction(1, 30)
            for packet in context.encode(video_frame):
                packet.stream = stream
                container.mux(packet)
        for context in (stream, other):
            for packet in context.encode():
                packet.stream = stream
                container.mux(packet)
    return buffer.getvalue()
