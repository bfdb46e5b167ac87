from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.policy.timing import (
    SendTimeError,
    after_quiet_hours,
    base_send_time,
    in_window,
    local_to_utc,
    zone_for,
)

NIGHT = (time(21), time(8))


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "zone, now, expected",
    [
        # Kathmandu is UTC+05:45: 10:00 local is 04:15 UTC.
        ("Asia/Kathmandu", utc(2026, 5, 1, 0, 0), utc(2026, 5, 1, 4, 15)),
        # Already past 10:00 local: tomorrow.
        ("Asia/Kathmandu", utc(2026, 5, 1, 5, 0), utc(2026, 5, 2, 4, 15)),
        # Chatham in summer is UTC+13:45.
        ("Pacific/Chatham", utc(2026, 1, 10, 0, 0), utc(2026, 1, 10, 20, 15)),
        # New York on the spring-forward day (EDT, UTC-4) and the day before (EST, UTC-5).
        ("America/New_York", utc(2026, 3, 7, 12, 0), utc(2026, 3, 7, 15, 0)),
        ("America/New_York", utc(2026, 3, 8, 12, 0), utc(2026, 3, 8, 14, 0)),
    ],
)
def test_local_send_time_in_the_customers_zone(zone, now, expected):
    assert base_send_time("10:00", ZoneInfo(zone), now) == expected


def test_a_local_time_skipped_by_dst_moves_later_never_earlier():
    ny = ZoneInfo("America/New_York")
    # 02:30 does not exist on 2026-03-08 in New York: the first real instant after it is 03:30 EDT.
    t = local_to_utc(datetime(2026, 3, 8).date(), time(2, 30), ny)
    assert t == utc(2026, 3, 8, 7, 30)
    assert t.astimezone(ny).hour == 3


def test_iso_send_times_naive_means_local_and_past_means_now():
    zone = ZoneInfo("Europe/Paris")
    now = utc(2026, 6, 1, 8, 0)
    assert base_send_time("2026-06-02T10:00", zone, now) == utc(2026, 6, 2, 8, 0)
    assert base_send_time("2026-06-02T10:00+00:00", zone, now) == utc(2026, 6, 2, 10, 0)
    assert base_send_time("2020-01-01T00:00+00:00", zone, now) == now
    assert base_send_time("now", zone, now) == now
    for bad in ("tomorrow", "25:00", "10h"):
        with pytest.raises(SendTimeError, match="send_time"):
            base_send_time(bad, zone, now)


def test_overnight_quiet_hours_wait_for_the_local_morning():
    tokyo = ZoneInfo("Asia/Tokyo")  # UTC+9
    late = utc(2026, 5, 1, 13, 30)  # 22:30 local
    assert after_quiet_hours(late, [NIGHT], tokyo) == utc(2026, 5, 1, 23, 0)  # 08:00 local next day
    early = utc(2026, 5, 1, 20, 0)  # 05:00 local
    assert after_quiet_hours(early, [NIGHT], tokyo) == utc(2026, 5, 1, 23, 0)
    noon = utc(2026, 5, 1, 3, 0)
    assert after_quiet_hours(noon, [NIGHT], tokyo) == noon


def test_quiet_hours_across_the_fall_back_repeated_hour():
    ny = ZoneInfo("America/New_York")
    window = (time(0, 30), time(1, 30))
    # 2026-11-01 01:10 EST (second occurrence of 01:10) is 06:10 UTC.
    second = utc(2026, 11, 1, 6, 10)
    assert second.astimezone(ny).fold == 1
    out = after_quiet_hours(second, [window], ny)
    assert out == utc(2026, 11, 1, 6, 30)  # 01:30 EST, the second 01:30
    assert not in_window(out.astimezone(ny).time(), window)


def test_windows_covering_the_whole_day_have_no_allowed_time():
    zone = ZoneInfo("UTC")
    assert after_quiet_hours(utc(2026, 1, 1, 12), [NIGHT, (time(8), time(21))], zone) is None


def test_unknown_zone_names_fall_back_to_utc():
    assert zone_for("Mars/Olympus_Mons") == ZoneInfo("UTC")
    assert zone_for("Pacific/Chatham") == ZoneInfo("Pacific/Chatham")


def test_personal_and_policy_windows_combine():
    zone = ZoneInfo("UTC")
    personal = (time(7, 30), time(9, 15))
    assert after_quiet_hours(utc(2026, 1, 1, 22), [NIGHT, personal], zone) == utc(2026, 1, 2, 9, 15)
    assert after_quiet_hours(utc(2026, 1, 1, 22), [NIGHT], zone) - utc(2026, 1, 2, 8) == timedelta(0)
