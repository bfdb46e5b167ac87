"""The rule for what an SMS reply asks for: keywords, revocation by any reasonable means, negation."""

from __future__ import annotations

import pytest

from orchestrator.inbound.replies import is_bare_keyword, reply_intent

OPT_OUTS = [
    "STOP", "stop.", "Stop!!!", '"STOP"', "*STOP*", "STOP 🙏", "STOP STOP", "stop please", "Please stop",
    "Stop it now", "STOPALL", "stop all", "UNSUBSCRIBE", "cancel", "END", "quit", "REVOKE", "OPTOUT",
    "optout please", "opt out", "Opt-out", "please stop texting me", "Stop texting me!", "can you stop this",
    "stop sending me offers", "revoke my consent", "I revoke consent", "unsubscribe me",
    "Don't text me anymore", "Don’t text me", "no more texts please", "remove me from your list",
    "take me off this list", "leave me alone", "how do I unsubscribe?", "cancel my subscription",
]
NOT_OPT_OUTS = [
    "don't stop the service", "Do not stop the service please", "Please don’t stop the service",
    "never stop the service", "please don't unsubscribe me", "do not stop texting me",
    "my payments stopped working", "Why did it stop?", "It won't stop", "Stop the outage!",
    "When will you stop the maintenance?", "cancel my order", "Please don't cancel my account",
    "The end of the outage was quick, thanks", "I quit my job", "Thanks for the update", "yes stop", "",
]


@pytest.mark.parametrize("body", OPT_OUTS)
def test_reasonable_ways_of_saying_stop_opt_out(body):
    assert reply_intent(body) == "opt_out"


@pytest.mark.parametrize("body", NOT_OPT_OUTS)
def test_negated_or_unrelated_uses_of_the_words_do_not(body):
    assert reply_intent(body) is None


@pytest.mark.parametrize(("body", "intent"), [("START", "opt_in"), ("yes", "opt_in"), (" Unstop ", "opt_in"),
                                              ("HELP", "help"), ("info!", "help"), ("help please", "help")])
def test_opt_in_and_help_keywords(body, intent):
    assert reply_intent(body) == intent


def test_only_a_lone_keyword_is_one_the_provider_answers_itself():
    assert is_bare_keyword(" stop. ") and is_bare_keyword("HELP!") and is_bare_keyword("start")
    assert not is_bare_keyword("stop please") and not is_bare_keyword('"STOP"')
