"""Expands RFC 5545 rules with python-dateutil, the oracle of calbridge's recurrence tests.

Reads one JSON object per line on stdin: {"rule": "FREQ=...", "dtstart": "2026-12-01T09:00:00",
"until": "2029-12-01", "limit": 200}; writes one JSON list of occurrence dates ("2026-12-02")
per line on stdout, in order: the rule's occurrences from dtstart, on or before until, at most
limit of them.
"""
import itertools
import json
import sys
from datetime import datetime, date

from dateutil.rrule import rrulestr


def main() -> None:
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        case = json.loads(line)
        start = datetime.fromisoformat(case["dtstart"])
        until = date.fromisoformat(case["until"])
        rule = rrulestr(case["rule"], dtstart=start)
        dates = []
        for occurrence in itertools.islice(rule, case["limit"]):
            if occurrence.date() > until:
                break
            dates.append(occurrence.date().isoformat())
        out.write(json.dumps(dates) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
