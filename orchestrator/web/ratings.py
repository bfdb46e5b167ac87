"""One-click survey answers behind the signed rating links of a ``feedback_survey`` email.

``GET /rate/{token}/{score}`` records the score at once and shows a page that offers a comment
(and a change of mind); ``POST /rate/{token}`` records what that form sends and redirects to
``GET /rate/{token}``, which only shows the latest answer. Plain HTML, no JavaScript.

The token (``orchestrator.surveys.rating_token``) names the customer and the survey message and
expires; a forged, altered, expired or cross-customer token, or a score off the scale, is a 400
with nothing recorded. The form post has the preference centre's Origin check.

Mail scanners that fetch every link of a message would record each score in turn: the history
keeps all of them and the latest counts, so a person's later click still wins.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from orchestrator.db import session_scope
from orchestrator.links import LinkClaims
from orchestrator.surveys import (
    MAX_COMMENT,
    RATING_PURPOSE,
    SOURCE_RATING_LINK,
    SOURCE_RATING_PAGE,
    BadAnswer,
    latest_answer,
    record_answer,
    scale_of,
    survey_for_claims,
)
from orchestrator.web.common import PAGE_HEADERS, form_pairs, require_same_origin, templates
from orchestrator.web.unsubscribe import claims_or_400

router = APIRouter()


def _score(text: str) -> int:
    if not text.strip().isdigit() or len(text.strip()) > 2:
        raise HTTPException(400, "That is not a score we offer.")
    return int(text.strip())


def _answer(claims: LinkClaims, score: int | None, comment: str, source: str):
    """Records the answer (score None: only reads the latest); returns what the page shows."""
    with session_scope() as session:
        try:
            survey = survey_for_claims(session, claims)
            if score is not None:
                record_answer(session, survey, score, channel=survey.channel, source=source, comment=comment)
        except BadAnswer as exc:
            raise HTTPException(400, f"{exc}.") from None
        assert survey.id is not None  # loaded
        latest = latest_answer(session, survey.id)
        if latest is None:
            raise HTTPException(404, "We have no answer from you yet: please use a link in our message.")
        return scale_of(survey), latest.score, latest.body


def _page(request: Request, token: str, scale, score: int, comment: str, saved: bool):
    return templates.TemplateResponse(
        request, "rating.html",
        {"scale": scale, "score": score, "comment": comment, "saved": saved, "max_comment": MAX_COMMENT,
         "answer_text": scale.describe(score), "action": f"/rate/{quote(token)}"},
        headers=PAGE_HEADERS,
    )


@router.get("/rate/{token}/{score}", response_class=HTMLResponse)
async def rate_in_one_click(request: Request, token: str, score: str):
    claims = claims_or_400(token, RATING_PURPOSE)
    scale, latest, comment = await run_in_threadpool(_answer, claims, _score(score), "", SOURCE_RATING_LINK)
    return _page(request, token, scale, latest, comment, saved=False)


@router.get("/rate/{token}", response_class=HTMLResponse)
async def show_answer(request: Request, token: str, saved: str = ""):
    claims = claims_or_400(token, RATING_PURPOSE)
    scale, latest, comment = await run_in_threadpool(_answer, claims, None, "", SOURCE_RATING_PAGE)
    return _page(request, token, scale, latest, comment, saved=saved == "1")


@router.post("/rate/{token}", response_class=HTMLResponse)
async def answer_with_comment(request: Request, token: str):
    claims = claims_or_400(token, RATING_PURPOSE)
    require_same_origin(request)
    fields = dict(form_pairs(await request.form()))
    score = _score(fields.get("score", ""))
    await run_in_threadpool(_answer, claims, score, fields.get("comment", ""), SOURCE_RATING_PAGE)
    return RedirectResponse(f"{request.url.path}?saved=1", status_code=303, headers=PAGE_HEADERS)
