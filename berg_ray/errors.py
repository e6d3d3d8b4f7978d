"""Exceptions raised by berg_ray.

Every error a user can cause is a subclass of :class:`BergRayError`, itself a ``ValueError``, and its message
names the bad value and what is allowed, so callers never see a traceback from deep inside torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from berg_ray.redact import redact_credentials

if TYPE_CHECKING:
    from pydantic import ValidationError


class BergRayError(ValueError):
    """Base class of every user-facing berg_ray error; credentials in URLs in its message are redacted."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_credentials(arg) if isinstance(arg, str) else arg for arg in args))


class UnknownModelError(BergRayError):
    """The model id is not one berg_ray serves."""


class InvalidSessionError(BergRayError):
    """The train_session string is malformed or not one of the released scans."""


class MalformedSessionError(InvalidSessionError):
    """The train_session string does not have the form session-X_scan-Y at all."""


class ScanNotAvailableError(BergRayError):
    """A valid scan whose weights are not present in the berg_dir (or not loaded by this server)."""


class ReleaseFormatError(BergRayError):
    """A release file is missing, corrupt, or has a missing/unknown key or a wrong shape."""


class UnsafeMetadataError(ReleaseFormatError):
    """A metadata pickle asked to construct an object outside the allow-list."""


class InvalidStimulusError(BergRayError):
    """The stimulus array has the wrong shape, dtype or values."""


class InvalidSelectionError(BergRayError):
    """The unit selection (roi / field / unit_index) is malformed or selects nothing."""


class DeviceError(BergRayError):
    """The requested device does not exist on this machine."""


class StorageError(BergRayError):
    """A local path or S3 location cannot be reached, read or written (names the URI, endpoint and the fix)."""


class InputNameError(BergRayError):
    """A sweep input's file name cannot be used as a stimulus id (it is not valid UTF-8)."""


class InputLinkError(StorageError):
    """A symbolic link under a sweep's input is dangling, or leads outside the input without follow_symlinks."""


class InvalidVideoError(InvalidStimulusError):
    """An input video file cannot be decoded, or its frames have the wrong size, dtype or values."""


class PrecisionError(DeviceError):
    """The requested numeric precision is unknown or the device cannot run it."""


class InvalidArgumentError(BergRayError):
    """An option of an API call (such as ``chunk_frames``) has the wrong type or value."""


class StimulusParameterError(BergRayError):
    """A stimulus generator got a parameter out of its documented range (names the parameter and the range)."""


class AnalysisInputError(BergRayError):
    """An analysis function got responses or angles of the wrong shape or values."""


def validation_summary(error: "ValidationError") -> str:
    """One line naming every invalid field of a pydantic ValidationError: ``core.max_batch: Extra inputs ...``."""
    return "; ".join(f"{'.'.join(str(p) for p in item['loc']) or 'value'}: {item['msg']}"
                     for item in error.errors())


class InvalidBehaviourError(BergRayError):
    """A behaviour input (perspectives / modulations) has the wrong shape, dtype or values."""


class InvalidRecordingError(BergRayError):
    """A recordings file of ``berg-ray evaluate`` is unreadable, lacks a member, or has a wrong shape or values."""
