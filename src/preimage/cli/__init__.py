"""The `preimage` command: parse, call the library, print. Bad input: one line, exit 2.

One module per subcommand that is not a method (models, layers, atlas, report, prior); every
registered method is a subcommand built from its settings (``method``).
"""

from __future__ import annotations

import argparse
import sys

from ..errors import PreimageError
from .common import EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's own usage block is several lines; keep the promise of one line
        self.exit(EXIT_USAGE, f"preimage: error: {message} (see `{self.prog} --help`)\n")


def build_parser():
    """The `preimage` parser: a subcommand per module and per registered method."""
    from ..methods import methods
    from . import atlas, layers, method, models, prior, report

    parser = _Parser(
        prog="preimage",
        description=(
            "Natural pre-images of vision models: what units respond to and what they are"
            " invariant to."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    models.add(sub)
    layers.add(sub)
    for m in methods():
        method.add(sub, m)
    atlas.add(sub)
    report.add(sub)
    prior.add(sub)
    return parser


def main(argv=None):
    """Run the command line ``argv`` (default: sys.argv[1:]); returns the exit status: 0, 2 for
    bad input (one line on stderr), 130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except PreimageError as e:
        print(f"preimage: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `preimage layers | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("preimage: interrupted; nothing was saved for the unfinished run", file=sys.stderr)
        return 130
    return 0
