"""Pieces every route module shares: page templates, the public URL, request checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

from orchestrator.db import session_scope
from orchestrator.settings import get_settings

T = TypeVar("T")

templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))

# Pages carry tokens in their URL: never hand it to another site, keep Origin on our own posts.
PAGE_HEADERS = {
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}


def public_url(request: Request) -> str:
    """The URL the provider called, as the public sees it (settings.public_base_url + path +
    query): behind a proxy the URL this process receives differs, and signatures cover the
    public one."""
    base = get_settings().public_base_url.rstrip("/")
    query = request.url.query
    return f"{base}{request.url.path}" + (f"?{query}" if query else "")


def public_origin() -> str:
    parts = urlsplit(get_settings().public_base_url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def require_same_origin(request: Request) -> None:
    """Refuses a browser form post that another site made (Origin, else Referer, names it).

    Clients that send neither header are not browsers acting for someone else.
    """
    origin = request.headers.get("origin")
    if origin is None and (referer := request.headers.get("referer")):
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin is not None and origin.lower() != public_origin():
        raise HTTPException(403, "this form can only be sent from our own pages")


def form_pairs(form) -> list[tuple[str, str]]:
    """Form fields as (name, value) pairs; uploads are not something any of our forms takes."""
    pairs = list(form.multi_items())
    if any(not isinstance(value, str) for _, value in pairs):
        raise HTTPException(400, "file uploads are not accepted")
    return pairs


async def in_transaction(work: Callable[[Session], T]) -> T:
    """``work`` in a transaction of its own, committed, in a worker thread (off the event loop)."""
    def run() -> T:
        with session_scope() as session:
            return work(session)

    return await run_in_threadpool(run)
