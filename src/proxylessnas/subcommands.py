"""Sub-command parsers in the layout every ``proxyless`` command shares: a help line, a
description and an example under it. Each package's ``commands`` module builds its commands
with these; :mod:`proxylessnas.cli` collects them.
"""

from __future__ import annotations

import argparse


def add_group(subparsers, name: str, help_text: str, description: str, example: str,
              metavar: str = "SUBCOMMAND"):
    """A command with sub-commands (``proxyless zoo list``); alone it prints its help.
    Returns the group's sub-parsers."""
    group = subparsers.add_parser(name, help=help_text, description=description,
                                  epilog=f"example:\n  {example}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    group.set_defaults(func=lambda args: group.print_help() or 0)
    return group.add_subparsers(dest=f"{name}_command", metavar=metavar, parser_class=type(group))


def add_command(subparsers, name: str, help_text: str, example: str, description: str | None = None):
    """One (sub-)command with its help line, description and an example."""
    return subparsers.add_parser(name, help=help_text, description=description or help_text,
                                 epilog=f"example:\n  {example}",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
