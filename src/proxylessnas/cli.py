"""The ``proxyless`` command. Thin: every command lives in its own package module.

Each module listed in ``COMMAND_MODULES`` has ``register(subparsers)``, which adds its
sub-command(s) and sets ``func`` (``args -> int``) as the parser default.
Bad input raises :class:`~proxylessnas.errors.ProxylessError`; here it becomes one line on
stderr and exit code 2. Warnings print as one ``warning:`` line each (:mod:`proxylessnas.warning_lines`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.stopping import Terminated, terminate_on_sigterm
from proxylessnas.version import __version__
from proxylessnas.warning_lines import one_line_warnings

COMMAND_MODULES = (
    "proxylessnas.space.commands",
    "proxylessnas.nets.commands",
    "proxylessnas.hardware.commands",
    "proxylessnas.train.commands",
    "proxylessnas.export.commands",
    "proxylessnas.search.commands",
)

EPILOG = """examples:
  proxyless search                               # the demo: bundled data, this machine's CPU
  proxyless search --config cifar10 --dataset cifar10:DIR --target-latency 12
  proxyless train runs/demo/arch.json --dataset demo
  proxyless latency predict proxyless_cpu --hardware flops
  proxyless zoo show proxyless_mobile
run 'proxyless COMMAND --help' for the options and an example of each command."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's error contract: one line, exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        raise ProxylessError(message, self.prog, f"run '{self.prog} --help'")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="proxyless",
        description="Hardware-aware neural architecture search (ProxylessNAS).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"proxylessnas {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=ArgumentParser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    with one_line_warnings(), terminate_on_sigterm():
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # key=value overrides may stand anywhere on the line, between options too
            if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
                args.overrides = list(args.overrides or []) + extra
            else:
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        args.command_line = list(sys.argv[1:] if argv is None else argv)  # what --nproc reruns
        return int(args.func(args) or 0)
    except ProxylessError as err:
        print(err.line(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (keyboard): run the command again", file=sys.stderr)
        return 130
    except Terminated:
        print("error: terminated (SIGTERM) before the run saved its position: run the command again "
              "(a run that has written a checkpoint continues with --resume)", file=sys.stderr)
        return Terminated.exit_code
    except BrokenPipeError:
        return 0
    except OSError as err:  # a path the system refuses (name too long, no permission, disk full ...)
        error = ProxylessError(str(err.strerror or err), str(err.filename or ""),
                               "check the path and the disk")
        print(error.line(), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
