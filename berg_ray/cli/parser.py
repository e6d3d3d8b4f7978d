"""The argparse machinery of ``berg-ray``: its parser class, help formatter and alias-aware actions.

Every parser of the command (the top one, each subcommand, each nested subcommand such as ``experiment tuning``)
is a :class:`BergRayParser`: abbreviations are refused (``--session`` is not taken as ``--sessions``), errors are
one line ``error: ...`` with exit status 2 (no usage block), an unknown option names the closest known one, and
``--help`` shows every option's default (:class:`DefaultsHelpFormatter`). Options renamed for one name per concept
keep their old spelling for a release (:class:`StoreWithAliases`): it still works, prints a one-line note on
stderr, and is left out of ``--help``.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from berg_ray.validation.names import printable_name

EXIT_USER_ERROR = 2


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to every option with a default its help text does not already state; an action's
    ``default_text`` attribute, when set, is shown instead of its default (e.g. "the config's device, else auto").
    Deprecated aliases (``deprecated_aliases``) are left out of the option list."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = getattr(action, "default_text", None)
        if shown is not None:
            return f"{text} (default: {shown.replace('%', '%%')})"
        if (action.required or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or not action.option_strings or "default" in text):
            return text
        return f"{text} (default: %(default)s)"

    def _format_action_invocation(self, action: argparse.Action) -> str:
        hidden = getattr(action, "deprecated_aliases", ())
        if not hidden:
            return super()._format_action_invocation(action)
        shown = copy.copy(action)
        shown.option_strings = [s for s in action.option_strings if s not in hidden]
        return super()._format_action_invocation(shown)


class BergRayParser(argparse.ArgumentParser):
    """An ArgumentParser with berg-ray's conventions (module docstring); subparsers inherit the class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        """As argparse's, but an argument this parser does not know is an error here, where the parser knows its
        own options (a subcommand's parser names the closest of its options, and its own ``--help``)."""
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}{self._closest_option(extras)}")
        return namespace, extras

    def error(self, message: str) -> NoReturn:
        """Print ``error: MESSAGE (see PROG --help)`` as one line on stderr and exit with status 2."""
        for action in self._actions:  # argparse names an option by all its strings: leave deprecated ones out
            hidden = getattr(action, "deprecated_aliases", ())
            if hidden:
                shown = [s for s in action.option_strings if s not in hidden]
                message = message.replace("/".join(action.option_strings), "/".join(shown))
        print(f"error: {printable_name(message)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)

    def _closest_option(self, extras: list[str]) -> str:
        known = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
        for extra in extras:
            if extra.startswith("--"):
                match = difflib.get_close_matches(extra.split("=", 1)[0], known, n=1, cutoff=0.75)
                if match:
                    return f"; did you mean {match[0]}?"
        return ""


def note_deprecated(option: str, instead: str) -> None:
    """The one-line note a deprecated option prints on stderr (it still works, for one more release)."""
    print(f"note: {option} is deprecated and will be removed in a later release; {instead}", file=sys.stderr)


class StoreWithAliases(argparse.Action):
    """Stores the value like argparse's default action; given by one of ``deprecated_aliases`` (old names kept for a
    release), it also prints a one-line note naming the option to use instead."""

    def __init__(self, option_strings: Sequence[str], dest: str, deprecated_aliases: Sequence[str] = (),
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.deprecated_aliases = tuple(deprecated_aliases)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if option_string in self.deprecated_aliases:
            note_deprecated(option_string, f"use {self.option_strings[0]}")
        setattr(namespace, self.dest, values)


class DeprecatedFlag(argparse.Action):
    """A flag whose request is now the default: accepted for a release (it stores True, so it still does what it
    did) with a one-line note, ``instead``, on what to use."""

    def __init__(self, option_strings: Sequence[str], dest: str, instead: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)
        self.instead = instead

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        note_deprecated(option_string or self.option_strings[0], self.instead)
        setattr(namespace, self.dest, True)
