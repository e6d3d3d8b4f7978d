"""Credentials in URLs never reach a message: ``http://user:password@host`` is shown as ``http://***@host``.

An S3 endpoint (``--s3-endpoint-url``, ``AWS_ENDPOINT_URL``), a download source or a storage URI may carry a
user and password in its authority. :func:`redact_credentials` is applied to the message of every
:class:`berg_ray.errors.BergRayError` and to every warning berg_ray prints, so no error path can echo them.
"""

from __future__ import annotations

import re

REDACTED = "***"
# scheme://userinfo@ : userinfo runs to the last '@' before the path, query, fragment, a quote or whitespace
# (an unescaped '@' inside a password is thus redacted too).
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#'\"]*@")


def redact_credentials(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced by ``***``."""
    return _USERINFO.sub(rf"\g<1>{REDACTED}@", text)
