"""Shared console helpers for the CLI: one Rich console, JSON output, clean errors."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]Error:[/] {message}", highlight=False)
    raise typer.Exit(code)
