"""Numbers a user wrote (query values, headers, command-line flags): ASCII digits only, of bounded length.

Python's ``int()``/``float()`` and the regex ``\\d`` take any Unicode decimal digit ('٨' is 8, '８' is 8), so a
number a user never meant would be cast silently; and ``int()`` of more than 4,300 digits raises a ValueError
("Exceeds the limit") that would escape as an internal error. Every number of user input is matched here first.
"""

from __future__ import annotations

import argparse
import re

from berg_ray.config import ECHO_CHARS, MAX_NUMBER_DIGITS

_INTEGER = re.compile(rf"[+-]?[0-9]{{1,{MAX_NUMBER_DIGITS}}}")
_DECIMAL = re.compile(rf"[+-]?(?:[0-9]{{1,{MAX_NUMBER_DIGITS}}}(?:\.[0-9]{{0,{MAX_NUMBER_DIGITS}}})?"
                      rf"|\.[0-9]{{1,{MAX_NUMBER_DIGITS}}})(?:[eE][+-]?[0-9]{{1,3}})?")
_ASCII_SPACE = " \t"


def ascii_int(text: str, signed: bool = False) -> int | None:
    """The integer ``text`` writes in ASCII digits (at most MAX_NUMBER_DIGITS, spaces and tabs around allowed; a
    sign only when ``signed``), else None."""
    text = text.strip(_ASCII_SPACE)
    if _INTEGER.fullmatch(text) is None or (not signed and text[0] in "+-"):
        return None
    return int(text)


def ascii_float(text: str) -> float | None:
    """The decimal number ``text`` writes in ASCII (``12``, ``0.5``, ``-3``, ``1e-3``; no nan/inf), else None."""
    text = text.strip(_ASCII_SPACE)
    return float(text) if _DECIMAL.fullmatch(text) else None


def int_flag(text: str) -> int:
    """argparse ``type`` of an integer flag: ASCII digits (an optional sign), else the flag's error."""
    value = ascii_int(text, signed=True)
    if value is None:
        raise argparse.ArgumentTypeError(f"{_echo(text)} is not a whole number in ASCII digits "
                                         f"(at most {MAX_NUMBER_DIGITS}), e.g. 8")
    return value


def float_flag(text: str) -> float:
    """argparse ``type`` of a decimal flag: ASCII digits, an optional sign, point and exponent; else the error."""
    value = ascii_float(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{_echo(text)} is not a decimal number in ASCII digits, e.g. 0.5")
    return value


def _echo(text: str) -> str:
    return repr(text if len(text) <= ECHO_CHARS else f"{text[:ECHO_CHARS]}...")
