"""What an inbound SMS (or an email reply) asks for: opt out, opt back in, help, or nothing (a reply
to keep as feedback).

Since 11 April 2025 a revocation "by any reasonable means" counts (47 CFR 64.1200(a)(10)), not only
the single keywords carriers act on. The rule, in order:

1. **Keywords.** Once quotes, punctuation, emoji and courtesy words ("please", "thanks", "now",
   "all", "me", "texts"...) are set aside, a reply made only of one keyword class is that class:
   "STOP", '"stop."', "Stop please!", "STOP STOP", "cancel all", "HELP".
2. **Revocation phrases** anywhere in a reply opt out: "opt out", "unsubscribe", "revoke" (my
   consent), "stop texting/messaging/sending/contacting/emailing", "no more texts", "don't text me",
   "remove me", "take me off" (your list)...
3. **Negation.** A phrase right after "don't", "do not", "never", "not"... ("don't stop the
   service", "please do not unsubscribe me") is not a revocation. A keyword inside a sentence
   ("my payments stopped", "cancel my order", "the end of the outage") is never one on its own.

Anything else is a reply to keep (feedback). The rule is deliberately lexical: it errs towards
opting out only on words people use to mean it, and every reply is kept either way.
"""

from __future__ import annotations

import re
import unicodedata

from channels.events import SmsKeyword as Intent

OPT_OUT_KEYWORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"})
OPT_IN_KEYWORDS = frozenset({"start", "yes", "unstop"})
HELP_KEYWORDS = frozenset({"help", "info"})
_KEYWORDS: dict[str, Intent] = {
    **dict.fromkeys(OPT_OUT_KEYWORDS, "opt_out"),
    **dict.fromkeys(OPT_IN_KEYWORDS, "opt_in"),
    **dict.fromkeys(HELP_KEYWORDS, "help"),
}
# Words that do not change what a keyword reply means.
_COURTESY = frozenset({
    "please", "pls", "plz", "thanks", "thank", "you", "thx", "ty", "now", "all", "me", "it", "this",
    "sms", "text", "texts", "message", "messages", "ok", "okay", "asap", "immediately",
})
_THEM = r"(me|us|texts?|sms|messages?|e ?mails?|these|this|them|it|the (texts?|messages?|sms|e ?mails?))"
_REVOCATIONS = [
    r"opt(ing)? (me )?out",
    r"unsubscribe",
    r"unsub",
    r"revoke",
    r"revoking",
    r"withdraw (my )?consent",
    r"stop (texting|messaging|sending|contacting|sms|txting|spamming|e ?mailing|mailing)",
    rf"stop {_THEM}",
    r"no more (texts?|messages?|sms|e ?mails?)",
    r"(do not|don ?t|dont) (text|message|sms|contact|e ?mail) (me|us)",
    r"remove (me|my (number|phone))",
    r"take (me|my (number|phone)) off",
    r"leave me alone",
    r"(cancel|end) (my |the )?(subscription|texts?|messages?|sms)",
]
_NEGATIONS = r"(do not|don ?t|dont|never|not|won ?t|wont|didn ?t|no need to|doesn ?t|shouldn ?t)"
_REVOCATION_RE = re.compile(rf"(?:^| )(?:{'|'.join(_REVOCATIONS)})(?= |$)")
_NEGATED_RE = re.compile(rf"(?:^| ){_NEGATIONS}(?: (?:please|pls|you|just|ever))? $")


def normalise(body: str) -> str:
    """Lower case, apostrophes dropped, everything but letters and digits made a single space."""
    text = unicodedata.normalize("NFKC", body).lower().replace("'", "").replace("\u2019", "")
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text).split())


def reply_intent(body: str) -> Intent | None:
    """What the reply asks for, by the rule above; None: a reply to keep as feedback."""
    text = normalise(body)
    words = [w for w in text.split() if w not in _COURTESY]
    intents = {_KEYWORDS.get(w) for w in words}
    if words and len(intents) == 1 and None not in intents:
        return intents.pop()
    for match in _REVOCATION_RE.finditer(text):
        before = text[: match.start()] + " "
        if not _NEGATED_RE.search(before):
            return "opt_out"
    return None


def is_bare_keyword(body: str) -> bool:
    """One keyword and nothing else but spaces and a final full stop or exclamation mark ("STOP",
    " stop. "): what the carrier and the provider answer by themselves."""
    return body.strip().rstrip(".!").strip().lower() in _KEYWORDS
