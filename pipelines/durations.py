"""Retention periods: `Nd`, `Nw`, `Nm` (calendar months), `Ny` (calendar years), subtracted on the calendar."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

_PATTERN = re.compile(r"^(\d{1,6})([dwmy])$")
# Bounds keep arithmetic away from year 1 and make typos like `9000y` an error, not a no-op.
_MAX = {"d": 36_600, "w": 5_220, "m": 1_200, "y": 100}
UNITS = {"d": "days", "w": "weeks", "m": "calendar months", "y": "calendar years"}


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str

    @classmethod
    def parse(cls, text: object) -> Duration:
        if not isinstance(text, str):
            raise ValueError(f"a duration is text like 90d, 6w, 4m or 7y, not {type(text).__name__}")
        m = _PATTERN.match(text.strip())
        if not m:
            raise ValueError(f"{text!r} is not a duration; write N followed by d, w, m or y (90d, 6w, 4m, 7y)")
        amount, unit = int(m.group(1)), m.group(2)
        if amount > _MAX[unit]:
            raise ValueError(f"{text!r} is longer than the largest allowed ({_MAX[unit]}{unit}, 100 years)")
        return cls(amount, unit)

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def describe(self) -> str:
        return f"{self.amount} {UNITS[self.unit]}"

    def before(self, instant: dt.datetime) -> dt.datetime:
        """`instant` minus this duration; months and years clamp the day to the month's end."""
        if self.unit == "d":
            return instant - dt.timedelta(days=self.amount)
        if self.unit == "w":
            return instant - dt.timedelta(weeks=self.amount)
        months = self.amount * (12 if self.unit == "y" else 1)
        index = instant.year * 12 + (instant.month - 1) - months
        year, month = divmod(index, 12)
        month += 1
        day = min(instant.day, calendar.monthrange(year, month)[1])
        return instant.replace(year=year, month=month, day=day)


def as_of_instant(as_of: dt.date) -> dt.datetime:
    """The as-of date D as the instant `D 00:00:00 UTC`."""
    return dt.datetime(as_of.year, as_of.month, as_of.day, tzinfo=dt.UTC)


_AS_OF = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Retention arithmetic subtracts up to 100 years (and the report a month) from the as-of date.
MIN_AS_OF = dt.date(1900, 1, 1)


def parse_as_of(text: str) -> dt.date:
    """Exactly YYYY-MM-DD (not the compact or week forms `date.fromisoformat` also reads), 1900 or later."""
    try:
        if not isinstance(text, str) or not _AS_OF.match(text):
            raise ValueError
        date = dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--as-of must be a date YYYY-MM-DD such as 2026-06-30, got {str(text)[:40]!r}") from None
    if date < MIN_AS_OF:
        raise ValueError(f"--as-of must be {MIN_AS_OF.isoformat()} or later, got {text!r}")
    return date
