"""The ``orchestrator`` command line.

Each module in this package that defines ``register(app)`` adds its commands, so a new
command group is a new module and nothing else. One style: the commands are module-level
functions (a group's on a module-level ``<group>_app = typer.Typer(...)``), and ``register``
only adds them (``app.add_typer(<group>_app, ...)`` or ``app.command(name)(function)``).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import Any

import typer

from orchestrator.cli.output import database_errors
from orchestrator.logging_setup import configure_logging

app = typer.Typer(
    help="Omnichannel communication orchestrator: who hears from us, when, how and why.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold personal data or secrets
)


@app.callback()
def _root() -> None:
    """Omnichannel communication orchestrator: who hears from us, when, how and why."""


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def command() -> Any:
    """The click command behind ``app``, with boolean flags shown as flags in ``--help``.

    Typer labels every boolean option ``<bool>`` as if it took a value (``--json <bool>``);
    a flag takes none, so its type column is left empty.
    """
    root = typer.main.get_command(app)
    stack = [root]
    while stack:
        current = stack.pop()
        for param in current.params:
            if getattr(param, "is_flag", False):  # typer's own click types: no isinstance
                param.metavar = ""
        # click has no hook for the help option of each command: wrap the instance's method
        current.get_help_option = _flag_help_option(  # type: ignore[method-assign]  # wrapped on purpose
            current.get_help_option)
        stack.extend(getattr(current, "commands", {}).values())
    return root


def _flag_help_option(make: Any) -> Any:
    def get_help_option(ctx: Any) -> Any:
        option = make(ctx)
        if option is not None:
            option.metavar = ""
        return option

    return get_help_option


# Prefect defaults for commands that start its local server (set before Prefect is imported; the
# environment still wins): no usage analytics, whose heartbeat fails loudly on a machine offline,
# and time for the server to start on a busy machine.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def main() -> None:
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    configure_logging()
    try:
        with database_errors():  # any command: an unreachable or empty database is one line
            command()(prog_name="orchestrator")
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
