import datetime as dt

import pytest

from pipelines.durations import Duration, as_of_instant

D = as_of_instant(dt.date(2026, 6, 30))


@pytest.mark.parametrize(("text", "expected"), [
    ("0d", dt.datetime(2026, 6, 30, tzinfo=dt.UTC)),    # zero period: due from the event itself
    ("90d", dt.datetime(2026, 4, 1, tzinfo=dt.UTC)),    # plain days
    ("2w", dt.datetime(2026, 6, 16, tzinfo=dt.UTC)),    # weeks are 7 days
    ("4m", dt.datetime(2026, 2, 28, tzinfo=dt.UTC)),    # the SPEC's example: clamped to February's end
    ("1m", dt.datetime(2026, 5, 30, tzinfo=dt.UTC)),    # 30 June minus a month is 30 May
    ("7y", dt.datetime(2019, 6, 30, tzinfo=dt.UTC)),    # calendar years
    ("18m", dt.datetime(2024, 12, 30, tzinfo=dt.UTC)),  # months crossing years
])
def test_duration_is_subtracted_on_the_calendar(text, expected):
    assert Duration.parse(text).before(D) == expected


def test_leap_day_minus_a_year_clamps_to_february_28():
    assert Duration.parse("1y").before(as_of_instant(dt.date(2028, 2, 29))) == dt.datetime(2027, 2, 28,
                                                                                           tzinfo=dt.UTC)


@pytest.mark.parametrize(("text", "message"), [
    ("90", "not a duration"),
    ("3 months", "not a duration"),
    ("-5d", "not a duration"),
    ("9000y", "longer than the largest allowed"),
    (90, "a duration is text"),
])
def test_bad_durations_say_what_would_be_valid(text, message):
    with pytest.raises(ValueError, match=message):
        Duration.parse(text)
