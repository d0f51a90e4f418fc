"""Command line: parse options, call a hunt, print what output/ formats, exit.

The only layer that exits the process or talks to click.
"""

from finbisect.cli.app import cli, main

__all__ = ["cli", "main"]
