"""The peer of `calbridge bench`: what an administrator would otherwise write with exchangelib.

For each mailbox, impersonate it and read the calendar items of the window
(``account.calendar.view(start, end)``: FindItem with a CalendarView, then the items' fields),
with a ThreadPoolExecutor of the same concurrency as calbridge's connection. It prints one JSON
line: wall time (of the reads, without Python's start), items read, mailboxes, errors and the
script's own peak memory.

Usage (``calbridge bench`` runs it; the password comes from CALBRIDGE_PEER_PASSWORD):

    python3 bench/exchangelib_peer.py --ews-url http://127.0.0.1:PORT/EWS/Exchange.asmx \\
        --username svc-calbridge --mailboxes FILE --start ISO --end ISO --threads 4
"""

import argparse
import datetime as dt
import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ews-url", required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--mailboxes", required=True, help="a file with one address per line")
    p.add_argument("--start", required=True, help="ISO 8601, with offset")
    p.add_argument("--end", required=True, help="ISO 8601, with offset")
    p.add_argument("--threads", type=int, default=4)
    a = p.parse_args()

    from exchangelib import IMPERSONATION, NTLM, UTC, Account, Configuration, Credentials, EWSDateTime, Version
    from exchangelib.version import EXCHANGE_2016

    password = os.environ.get("CALBRIDGE_PEER_PASSWORD", "")
    mailboxes = [line.strip() for line in open(a.mailboxes) if line.strip()]
    start = EWSDateTime.from_datetime(dt.datetime.fromisoformat(a.start).astimezone(dt.timezone.utc)).astimezone(UTC)
    end = EWSDateTime.from_datetime(dt.datetime.fromisoformat(a.end).astimezone(dt.timezone.utc)).astimezone(UTC)
    config = Configuration(
        service_endpoint=a.ews_url,
        credentials=Credentials(a.username, password),
        auth_type=NTLM,
        version=Version(build=EXCHANGE_2016),
        max_connections=a.threads,
    )

    def read(mailbox):
        account = Account(mailbox, config=config, autodiscover=False, access_type=IMPERSONATION, default_timezone=UTC)
        return sum(1 for _ in account.calendar.view(start=start, end=end))

    started = time.monotonic()
    items = errors = 0
    first_error = None
    with ThreadPoolExecutor(max_workers=a.threads) as pool:
        futures = [pool.submit(read, m) for m in mailboxes]
        for f in futures:
            try:
                items += f.result()
            except Exception as e:  # a failed mailbox is counted, the others go on
                errors += 1
                first_error = first_error or f"{type(e).__name__}: {e}"[:300]
    wall = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    print(
        json.dumps(
            {
                "wall_s": wall,
                "items": items,
                "mailboxes": len(mailboxes),
                "errors": errors,
                "peak_mem_mib": peak,
                "first_error": first_error,
            }
        )
    )
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
