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
    x_weighted_length,
)


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
        assert count.units > (160 if count.segments == 2 else 153 * (count.segments - 1))


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
