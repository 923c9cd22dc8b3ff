"""Time windows of the dashboard: how far back a page looks and how wide its chart buckets are.

Examples
--------
>>> w = parse_window("week")
>>> w.span.days, w.stride.total_seconds() / 3600, w.buckets
(7, 6.0, 28)
>>> parse_window(None).name
'day'
>>> try:
...     parse_window("year")
... except BadWindow as exc:
...     print(exc)
unknown window 'year': use hour, day, week or month
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["DEFAULT_WINDOW", "WINDOWS", "BadWindow", "Window", "parse_window"]


class BadWindow(ValueError):
    """A ``?window=`` value that is not one of :data:`WINDOWS` (a 400 page)."""


@dataclass(frozen=True)
class Window:
    """The last ``span`` of traffic, charted in buckets of ``stride``."""

    name: str
    label: str
    span: timedelta
    stride: timedelta

    @property
    def buckets(self) -> int:
        """Number of chart buckets."""
        return int(self.span / self.stride)

    def since(self, now: datetime) -> datetime:
        """Start of the window ending at ``now``: ``now - span`` rounded down to a bucket
        boundary, so every bucket is whole (and, from a day up, made of whole hours)."""
        return _floor(now - self.span, self.stride)

    def bucket_starts(self, now: datetime) -> list[datetime]:
        """Starts of every bucket from the one holding ``since(now)`` to the one holding ``now``,
        aligned as PostgreSQL's ``date_bin(stride, t, epoch)`` aligns them."""
        step = self.stride
        out = []
        t = self.since(now)
        while t <= now:
            out.append(t)
            t += step
        return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _floor(t: datetime, step: timedelta) -> datetime:
    return _EPOCH + ((t - _EPOCH) // step) * step


WINDOWS: dict[str, Window] = {
    w.name: w
    for w in (
        Window("hour", "last hour", timedelta(hours=1), timedelta(minutes=2)),
        Window("day", "last day", timedelta(days=1), timedelta(hours=1)),
        Window("week", "last week", timedelta(days=7), timedelta(hours=6)),
        Window("month", "last 30 days", timedelta(days=30), timedelta(days=1)),
    )
}
DEFAULT_WINDOW = "day"


def parse_window(value: str | None) -> Window:
    """The window named ``value`` (default ``day``); :class:`BadWindow` otherwise."""
    if value is None or value == "":
        return WINDOWS[DEFAULT_WINDOW]
    try:
        return WINDOWS[value]
    except KeyError:
        raise BadWindow(
            f"unknown window {value[:40]!r}: use {', '.join(list(WINDOWS)[:-1])} or month"
        ) from None
