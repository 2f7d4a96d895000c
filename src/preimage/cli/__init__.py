"""The `preimage` command: parse, call the library, print. Bad input: one line, exit 2.

One module per subcommand that is not a method (models, layers, atlas, report, prior); every
registered method is a subcommand built from its settings (``method``). Only the subcommand the
command line names has its flags built: listing the commands, as ``preimage --help`` does,
imports no PyTorch.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import PreimageError
from .common import EXIT_USAGE, plain


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's own usage block is several lines; keep the promise of one line
        self.exit(EXIT_USAGE, f"preimage: error: {message} (see `{self.prog} --help`)\n")


def _commands():
    """[(name, help, build)]: build(sub) adds the subcommand with its flags."""
    from ..methods.registry import get_method, summaries
    from . import atlas, compare, layers, method, models, neurons, prior, report

    out = [(models.__name__, models.HELP, models.add), (layers.__name__, layers.HELP, layers.add)]
    for name, help_text in summaries():
        out.append((name, help_text, lambda sub, name=name: method.add(sub, get_method(name))))
    for module in (atlas, report, compare, prior, neurons):
        out.append((module.__name__, module.HELP, module.add))
    return [(name.rpartition(".")[2], h, build) for name, h, build in out]


def build_parser(argv=None):
    """The parser: every subcommand listed, the flags of the one ``argv`` names built (every
    subcommand's when ``argv`` is None)."""
    parser = _Parser(
        prog="preimage",
        description=(
            "Natural pre-images of vision models: what units respond to and what they are"
            " invariant to."
        ),
    )
    parser.add_argument("--version", action="version", version=f"preimage {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chosen = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for name, help_text, build in _commands():
        if chosen is None or name == chosen:
            build(sub)
        else:
            sub.add_parser(name, help=help_text)  # listed; its flags are built when named
    return parser


def main(argv=None):
    """Run the command line; returns the exit status (0, 2 for bad input, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # what results record as their command line (main's own, not the script's)
    if args.command is None:  # `preimage` alone: what there is to do
        parser.print_help()
        return 0
    try:
        args.run(args)
    except PreimageError as e:
        print(f"preimage: error: {plain(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `preimage layers | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("preimage: interrupted; nothing was saved for the unfinished run", file=sys.stderr)
        return 130
    except OSError as e:  # a disk that fills up, a folder that vanishes: not bad input
        where = f" {e.filename!r}" if e.filename else ""
        print(
            f"preimage: error: could not write{where}: {e.strerror or e}; an earlier run in"
            " --out is as it was",
            file=sys.stderr,
        )
        return 1
    return 0
