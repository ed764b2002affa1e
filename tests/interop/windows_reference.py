"""Sending windows computed independently with Python's zoneinfo (the IANA database as the
system ships it), for comparing with Switchboard's chrono-tz arithmetic.

Input (stdin, JSON): {"time_zone", "windows": [{"days": ["mon", ...], "start": "HH:MM",
"end": "HH:MM"}], "instants": ["RFC 3339 UTC", ...]}.
Output (stdout, JSON): one {"open_at", "closes_at"} per instant, RFC 3339 UTC or null:
open_at is the instant itself when a window is open then, else the next opening; closes_at is
when the window open at the instant closes (windows that touch count as one).

Switchboard's documented rules for local times the clock skips or repeats: a time that does
not exist (spring forward) means the first instant after the gap; a time that occurs twice
(fall back) means the earlier one. "24:00" is the next day's midnight.
"""

import json
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def exists(local):
    """Whether a naive local time exists: it survives a trip through UTC."""
    aware = local.replace(tzinfo=ZONE, fold=0)
    back = aware.astimezone(timezone.utc).astimezone(ZONE).replace(tzinfo=None)
    return back == local


def instant(date, minutes):
    """The UTC instant a local date and minute of day name, by the rules above."""
    local = datetime(date.year, date.month, date.day) + timedelta(minutes=minutes)
    # In a gap, the first local minute that exists again is the first instant after it.
    while not exists(local):
        local += timedelta(minutes=1)
    return local.replace(tzinfo=ZONE, fold=0).astimezone(timezone.utc)


def minutes(text):
    hours, mins = text.split(":")
    return int(hours) * 60 + int(mins)


def intervals(now):
    local_day = now.astimezone(ZONE).date()
    found = []
    for offset in range(-1, 9):
        date = local_day + timedelta(days=offset)
        for w in SPEC["windows"]:
            if DAYS[date.weekday()] in w["days"]:
                start, end = instant(date, minutes(w["start"])), instant(date, minutes(w["end"]))
                if start < end:
                    found.append((start, end))
    found.sort()
    merged = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def text(t):
    return None if t is None else t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


SPEC = json.load(sys.stdin)
ZONE = ZoneInfo(SPEC["time_zone"])
answers = []
for raw in SPEC["instants"]:
    now = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    spans = intervals(now)
    inside = next(((s, e) for s, e in spans if s <= now < e), None)
    if inside:
        answers.append({"open_at": text(now), "closes_at": text(inside[1])})
    else:
        later = next((s for s, _ in spans if s > now), None)
        answers.append({"open_at": text(later), "closes_at": None})
json.dump(answers, sys.stdout)
