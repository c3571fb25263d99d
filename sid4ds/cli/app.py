"""The ``sid4ds`` command: its parser, and the error handling every subcommand shares.

Exit codes: 0 success, 1 bad input or a session problem (the message says what to do),
2 wrong usage, 3 the session is busy with another command, 130 interrupted.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from sid4ds.cli.benchmark import add_benchmark_command
from sid4ds.cli.demo import add_demo_command
from sid4ds.cli.session import SESSION_EXAMPLES, add_session_commands

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sid4ds`` command."""
    parser = argparse.ArgumentParser(
        prog="sid4ds",
        description="Pick the images of a production line worth labelling (SID4DS).",
        epilog=SESSION_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_demo_command(commands)
    add_session_commands(commands)
    add_benchmark_command(commands)
    return parser


# Python argument names in messages of the library, and the options that set them.
_OPTION_HINTS = (
    (re.compile(r"\b\w+=\S+ \((?:sid4ds \w+ )?(--[\w-]+(?: [^\s()]+)?)\)"), r"\1"),
    (re.compile(r"on_error='warn'"), "--skip-unreadable"),
    (re.compile(r"\bimage_size= "), "--image-size "),
    (re.compile(r"\btile=(?=\S)"), "--tile "),
    (re.compile(r"\btile= "), "--tile "),
)


def _for_the_shell(message: str) -> str:
    for pattern, replacement in _OPTION_HINTS:
        message = pattern.sub(replacement, message)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sid4ds`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    from sid4ds.session import SessionBusyError

    def show_warning(message: Any, category: Any, *rest: Any, **kwargs: Any) -> None:
        print(f"sid4ds {args.command}: warning: {_for_the_shell(str(message))}",
              file=sys.stderr)

    previous = warnings.showwarning
    warnings.showwarning = show_warning
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            if getattr(args, "quiet", False):
                warnings.filterwarnings("ignore", category=UserWarning,
                                        message="removed a stale lock")
            return args.handler(args)
    except SessionBusyError as error:
        print(f"sid4ds {args.command}: error: {error}", file=sys.stderr)
        return 3
    except (ValueError, TypeError, OSError, ImportError) as error:
        print(f"sid4ds {args.command}: error: {_for_the_shell(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sid4ds {args.command}: interrupted; the session is as it was after the last "
              f"finished step: run the command again to go on", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous

