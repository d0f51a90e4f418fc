"""The `finbisect` command group and its error contract. The only module that exits.

Every refusal is one line on stderr and a documented exit code; click's own
usage errors are folded into that shape too.
"""

from __future__ import annotations

import signal
import sys
from typing import Any, NoReturn

import click

from finbisect.cli.commands import COMMANDS
from finbisect.cli.run import demo, run
from finbisect.errors import ExitCode, FinbisectError

__all__ = ["cli", "main"]


class _Group(click.Group):
    """Runs commands with finbisect's error contract instead of click's."""

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:
        kwargs["standalone_mode"] = False
        # A polite kill, or the terminal going away, gets the same clean-up as Ctrl-C:
        # children killed, state saved, lock released.
        for number in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.default_int_handler)
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except click.exceptions.Abort:
            _fail("interrupted", ExitCode.INTERRUPTED)
        except click.ClickException as exc:
            _fail(exc.format_message().replace("\n", " "), ExitCode.USAGE)
        except FinbisectError as exc:
            _fail(exc.message, exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; children killed, cache kept", ExitCode.INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"finbisect: error: {message}", err=True)
    sys.exit(code)


def main() -> None:
    cli()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="finbisect")
def cli() -> None:
    """Find the CPython commit that introduced or fixed a crash or hang at exit."""


for _command in (run, demo, *COMMANDS):
    cli.add_command(_command)
