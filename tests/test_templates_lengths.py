"""SMS segment counting (GSM-7 / UCS-2), X weighted length and the overflow messages."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.templating.lengths import (
    GSM7,
    UCS2,
    sms_count,
    sms_metrics,
    x_post_metrics,
    x_post_problem,
    x_weighted_length,
)

DIGITS = "1234567890" * 40  # the calculator's test bodies are runs of these digits


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, GSM7, 160, 1),
        ("a" * 161, GSM7, 161, 2),
        ("a" * 306, GSM7, 306, 2),  # 2 x 153
        ("a" * 307, GSM7, 307, 3),
        ("€", GSM7, 2, 1),  # extension character: stays GSM-7, counts two
        ("a" * 159 + "€", GSM7, 161, 2),
        ("[", GSM7, 2, 1),
        ("[" * 80, GSM7, 160, 1),
        ("{}\\^~|]", GSM7, 14, 1),
        ("Ça va, café?", GSM7, 12, 1),  # Ç and é are GSM-7
        ("ç", UCS2, 1, 1),  # lowercase ç is not
        ("x" * 70, GSM7, 70, 1),
        ("ç" * 70, UCS2, 70, 1),
        ("ç" * 71, UCS2, 71, 2),
        ("ç" * 134, UCS2, 134, 2),  # 2 x 67
        ("ç" * 135, UCS2, 135, 3),
        ("😀", UCS2, 2, 1),  # an emoji switches to UCS-2 and takes two UTF-16 units
        ("a" * 68 + "😀", UCS2, 70, 1),
        ("a" * 69 + "😀", UCS2, 71, 2),
        ("", GSM7, 0, 0),
    ],
)
def test_sms_segments(text, encoding, units, segments):
    count = sms_count(text)
    assert (count.encoding, count.units, count.segments) == (encoding, units, segments)


def test_one_emoji_turns_a_one_segment_text_into_three():
    assert sms_count("a" * 150).segments == 1
    assert sms_count("a" * 150 + "🙂").segments == 3  # 152 UTF-16 units / 67


def test_overflow_message_carries_the_numbers():
    metrics = sms_metrics("ç" * 141, max_segments=2)
    assert metrics.over_limit
    assert metrics.describe() == "sms: 3 segments (UCS-2, 141 chars), max 2"
    assert not sms_metrics("a" * 160, max_segments=1).over_limit


@given(st.text(max_size=400), st.characters())
def test_appending_a_character_never_reduces_the_segment_count(text, extra):
    assert sms_count(text + extra).segments >= sms_count(text).segments


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz €[]{}", max_size=500))
def test_gsm_text_fits_the_segment_capacity(text):
    count = sms_count(text)
    assert count.encoding == GSM7
    capacity = 160 if count.segments <= 1 else 153 * count.segments
    assert count.units <= capacity
    if count.segments > 1:
        # an escape pair is never split, so a segment carries at least 152 septets
        assert count.units > (160 if count.segments == 2 else 152 * (count.segments - 1))


# Twilio's message-segment-calculator (github.com/TwilioDevEd/message-segment-calculator,
# tests/index.test.js): the body, its encoding and its segment count, case by case.
@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [
        (DIGITS[:160], GSM7, 1),  # GSM-7 in one segment
        (DIGITS[:161], GSM7, 2),  # GSM-7 in two segments
        (DIGITS[:307], GSM7, 3),  # GSM-7 in three segments
        ("😜" + DIGITS[1:69], UCS2, 1),  # UCS-2 message in one segment
        ("😜" + DIGITS[1:70], UCS2, 2),  # UCS-2 message in two segments
        ("😜" + DIGITS[1:134], UCS2, 3),  # UCS-2 message in three segments
        ("🇮🇹" + DIGITS[1:67], UCS2, 1),  # a flag (two surrogate pairs), one-segment boundary
        ("🇮🇹" + DIGITS[1:68], UCS2, 2),  # ... two-segment boundary
        ("🏳️‍🌈" + DIGITS[1:65], UCS2, 1),  # four-scalar grapheme, one-segment boundary
        ("🏳️‍🌈" + DIGITS[1:66], UCS2, 2),  # ... two-segment boundary
        ("😀" + "]" * 68, UCS2, 1),  # UCS-2 with GSM escape characters: each is one unit
        ("😀" + "]" * 69, UCS2, 2),
        ("e\u0301\u0301\u0301" + "a" * 66, UCS2, 1),  # triple accent: one grapheme, four scalars
        ("e\u0301\u0301\u0301" + "a" * 67, UCS2, 2),
        ("Á" * 70, UCS2, 1),
        ("ú" * 71, UCS2, 2),
    ],
)
def test_segments_match_twilios_calculator(body, encoding, segments):
    count = sms_count(body)
    assert (count.encoding, count.segments) == (encoding, segments)


@pytest.mark.parametrize("escape", ["|", "^", "€", "{", "}", "[", "]", "~", "\\"])
def test_calculator_escape_character_cases(escape):
    assert sms_count(escape + DIGITS[:158]).segments == 1
    assert sms_count(escape + DIGITS[:159]).segments == 2


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        # an escape pair that would straddle the end of a segment moves to the next one
        ("a" * 152 + "€" + "a" * 152, 3),  # 152 + 2 + 152 = 306 septets, 2 x 153, yet 3 segments
        ("a" * 151 + "€" + "a" * 153, 2),  # the pair ends segment 1 exactly
        ("a" * 153 + "€" + "a" * 151, 2),  # the pair opens segment 2
        ("€" * 153, 3),  # 306 septets: 76 pairs fit a segment (152), not 76.5
        # a surrogate pair that would straddle moves too
        ("ç" * 66 + "😀" + "ç" * 66, 3),  # 66 + 2 + 66 = 134 units = 2 x 67, yet 3 segments
        ("ç" * 65 + "😀" + "ç" * 67, 2),
        ("😀" * 67, 3),  # 134 units: 33 emoji fit a segment (66)
        ("😀" * 66, 2),
    ],
)
def test_two_unit_characters_are_never_split(text, segments):
    assert sms_count(text).segments == segments


def test_a_crlf_pair_may_end_a_segment():
    # CR LF is two characters for the calculator, so a message may be split between them
    assert sms_count("a" * 152 + "\r\n" + "a" * 152).segments == 2


def test_x_weighted_length_counts_urls_as_23_and_wide_characters_as_two():
    long_url = "https://status.example.com/incidents/2291/updates/very-long-path-for-testing"
    assert x_weighted_length(long_url) == 23
    assert x_weighted_length("a" * 10) == 10
    assert x_weighted_length("日本") == 4
    assert x_weighted_length("👍") == 2
    assert not x_post_metrics("a" * 280).over_limit
    over = x_post_metrics("a" * 258 + " " + long_url)  # 258 + 1 + 23 = 282
    assert over.over_limit
    assert over.describe() == "social post: weighted length 282, max 280"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("ok \ufffe", "U+FFFE"),
        ("ok \uffff", "U+FFFF"),
        ("ok \ufeff", "U+FEFF"),
        *[(f"status {chr(c)} update", f"U+{c:04X}") for c in range(0x202A, 0x202F)],
    ],
)
def test_x_post_validity_besides_length(text, problem):
    # twitter-text: empty text and these characters make a post invalid whatever its length
    assert problem in (x_post_problem(text) or "")
    metrics = x_post_metrics(text)
    assert metrics.refused and not metrics.over_limit
    assert metrics.describe().startswith("social post: ")


@pytest.mark.parametrize("text", ["I am a Tweet", "a" * 280, "\u2066isolate\u2069 is allowed", " "])
def test_x_post_validity_accepts_ordinary_text(text):
    assert x_post_problem(text) is None
    assert not x_post_metrics(text).refused


def test_a_post_x_refuses_is_a_length_error_before_any_send():
    from orchestrator.templating.errors import LengthError
    from orchestrator.templating.render import measure
    from orchestrator.templating.rules import ChannelLimits

    with pytest.raises(LengthError, match="U\\+202E"):
        measure("social:post", None, "Resolved: \u202egnissecorp\u202c", ChannelLimits(), marketing=False)
    with pytest.raises(LengthError, match="empty"):
        measure("social:post", None, "", ChannelLimits(), marketing=False)
    assert measure("social:post", None, "Resolved.", ChannelLimits(), marketing=False).length == 9
