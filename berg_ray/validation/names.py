"""File names as printable text: what berg_ray shows of a name that it did not choose itself.

A local file name is bytes; Python decodes those that are not valid UTF-8 with ``surrogateescape`` (byte 0xE9
becomes U+DCE9), and such a string cannot be written as UTF-8 (JSON, Parquet, a terminal). A valid name may hold
control characters (newline, carriage return, escape) that forge lines or terminal commands when printed.
:func:`printable_name` shows both as Python-style escapes: undecodable byte 0xE9 as ``\\xe9``, newline as ``\\n``,
carriage return ``\\r``, tab ``\\t``, other control characters ``\\xNN`` / ``\\uNNNN``. Printable characters,
backslashes included, are kept as they are, so an escaped name is for reading, not for finding the file again.
"""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Cc: C0/C1 controls and DEL; Zl/Zp: line and paragraph separators (a new line to some viewers); Cs: the
# surrogates of undecodable bytes; bidirectional overrides and isolates reorder what is shown after them.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def is_utf8(name: str) -> bool:
    """Whether ``name`` came from valid UTF-8 bytes (holds no surrogate of an undecodable byte)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_name(text: str) -> str:
    """``text`` with undecodable bytes and control characters escaped (see the module docstring); one line."""
    if text.isprintable() and is_utf8(text):
        return text
    return "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the undecodable byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    if char in _BIDI_CONTROLS or unicodedata.category(char) in _ESCAPED_CATEGORIES:
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return char
