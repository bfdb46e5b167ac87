"""The ``orchestrator`` command line.

Each module in this package that defines ``register(app)`` adds its commands, so a new
command group is a new module and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

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


def main() -> None:
    configure_logging()
    app()
