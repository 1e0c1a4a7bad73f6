"""exchangelib, unmodified, against the EWS face of calbridge's Exchange simulator.

A full session, over Basic, over NTLM and with OAuth (client credentials, as for Exchange
Online): the version probe (ConvertId of the id ``DUMMY``) or a configured version, the folder
walk to the calendar (GetFolder of ``root`` and ``calendar``), a CalendarView, a meeting with a
room as a resource (CreateItem with invitations; the room accepts by its booking rules), the
room's free/busy (GetServerTimeZones, then GetUserAvailability in a zone with daylight saving),
an update that moves the meeting, its deletion, and SyncFolderItems reporting each of those
changes; a weekly series (CalendarView expansion, the master's recurrence, an occurrence by
index and its master); also the directory (ResolveNames, GetRoomLists, GetRooms), ConvertId of a
real id, and throttling (``ErrorServerBusy`` with ``BackOffMilliseconds``, which exchangelib's
fault-tolerant retry policy honours).

How the simulator is reached: as in ``test_msgraph_sdk.py``, over HTTPS with the simulator's
throw-away CA trusted through ``REQUESTS_CA_BUNDLE`` (exchangelib uses requests); no
autodiscover (``Configuration(service_endpoint=...)``, ``Account(autodiscover=False)``). The
service account of the bundled demo organisation, ``svc-calbridge``, has the
ApplicationImpersonation role, so the accounts use ``access_type=IMPERSONATION``; with OAuth,
the demo app (role ``full_access_as_app``) gets a token for ``https://outlook.office365.com``
from the simulator's token endpoint (``token_url`` overridden). NTLM comes
from exchangelib's own dependency, requests_ntlm; the simulator keeps the NTLM-authenticated
connection, so the handshake happens once per connection, as with Exchange's IIS.

Every answer exchangelib receives is recorded and, at the end of each test, validated against
Microsoft's EWS schema with xmllint (the ``exchange2016`` variant under
``$CALBRIDGE_PROTOCOL_DIR/ews``, as calbridge's Rust tests do); SOAP faults are checked for
well-formedness only, since the schema does not describe them. Without the schema files or
xmllint the validation is skipped with a message, except under CI (``CI`` set).

Run: ``python3 -m pip install -r tests/python/requirements.txt && python3 -m pytest -q tests/python``
from the repository root (``scripts/test.sh`` does this).
"""

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from test_msgraph_sdk import _sim_command

REPO = Path(__file__).resolve().parents[2]
ORGANIZER = "scheduler@contoso.example"
ROOM = "room201@contoso.example"
# The demo scenario's EWS sign-in (crates/sim/scenarios/demo.toml).
EWS_USER = "svc-calbridge"
EWS_PASSWORD = "demo-ews-password-change-me"


@pytest.fixture(scope="module")
def sim():
    tmp = tempfile.mkdtemp(prefix="calbridge-sim-exchangelib-")
    ca = os.path.join(tmp, "ca.pem")
    proc = subprocess.Popen(
        _sim_command() + ["--tls", "--ca-out", ca, "--exit-on-stdin-eof"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    saved = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
    try:
        line = proc.stdout.readline().decode()
        if not line:
            raise RuntimeError("the simulator exited before printing its address")
        info = json.loads(line)
        info["ca_cert_file"] = info.get("ca_cert_file") or ca
        os.environ["REQUESTS_CA_BUNDLE"] = info["ca_cert_file"]
        os.environ["SSL_CERT_FILE"] = info["ca_cert_file"]
        yield info
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


class Recorder:
    """Keeps every answer exchangelib receives (it posts through ``post_ratelimited``)."""

    def __init__(self):
        self.answers = []

    def install(self, monkeypatch):
        import exchangelib.services.common as common

        original = common.post_ratelimited

        def recording(*args, **kwargs):
            r, session = original(*args, **kwargs)
            self.answers.append((r.status_code, r.content))
            return r, session

        monkeypatch.setattr(common, "post_ratelimited", recording)


def _schema():
    """The envelope schema wrapper for xmllint, or None (after saying why) when unavailable."""
    ews = Path(os.environ.get("CALBRIDGE_PROTOCOL_DIR", REPO.parent / "shared" / "protocol")) / "ews"
    template = ews / "xsd" / "soap-env-ews.xsd.template"
    why = None
    if not template.is_file():
        why = f"Microsoft's EWS schemas are not at {ews} (set CALBRIDGE_PROTOCOL_DIR)"
    elif shutil.which("xmllint") is None:
        why = "xmllint is not installed (apt-get install libxml2-utils)"
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        print(f"SKIPPED schema validation: {why}")
        return None
    schema = Path(tempfile.mkdtemp(prefix="calbridge-xsd-")) / "env2016.xsd"
    schema.write_text(template.read_text().replace("SCHEMADIR", str((ews / "xsd" / "exchange2016").resolve())))
    return schema


def _validate(answers):
    schema = _schema()
    if schema is None:
        return
    from lxml import etree

    checked = 0
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, (status, content) in enumerate(answers):
            root = etree.fromstring(content)  # well-formed, or this raises
            body = root.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
            if body is not None and body.find("{http://schemas.xmlsoap.org/soap/envelope/}Fault") is not None:
                assert status == 500, status
                continue
            assert status == 200, (status, content[:500])
            path = Path(d) / f"answer-{i}.xml"
            path.write_bytes(content)
            files.append(str(path))
        for start in range(0, len(files), 200):
            batch = files[start : start + 200]
            out = subprocess.run(["xmllint", "--noout", "--schema", str(schema), *batch], capture_output=True, text=True)
            assert out.returncode == 0, out.stderr[-4000:]
            checked += len(batch)
    assert checked, "no answer was validated"
    print(f"{checked} answers validate against the EWS schema")


@pytest.fixture
def recorder(monkeypatch):
    rec = Recorder()
    rec.install(monkeypatch)
    yield rec
    _validate(rec.answers)


def _credentials(sim, auth):
    """Basic and NTLM: the service account; OAuth: the demo app's client credentials, with
    the token endpoint at the simulator instead of login.microsoftonline.com."""
    from exchangelib import BASIC, NTLM, OAUTH2, Credentials, OAuth2Credentials

    if auth == "oauth":

        class SimulatorOAuth2Credentials(OAuth2Credentials):
            @property
            def token_url(self):
                return f"{sim['base_url']}/{self.tenant_id}/oauth2/v2.0/token"

        creds = SimulatorOAuth2Credentials(
            client_id=sim["client_id"], client_secret=sim["client_secret"], tenant_id=sim["tenant_id"]
        )
        return creds, OAUTH2
    return Credentials(EWS_USER, EWS_PASSWORD), BASIC if auth == "basic" else NTLM


def _account(sim, auth, mailbox=ORGANIZER, probe=False, retry_policy=None):
    from exchangelib import IMPERSONATION, UTC, Account, Configuration, Version
    from exchangelib.version import EXCHANGE_2016

    kwargs = {} if probe else {"version": Version(build=EXCHANGE_2016)}
    if retry_policy is not None:
        kwargs["retry_policy"] = retry_policy
    credentials, auth_type = _credentials(sim, auth)
    config = Configuration(service_endpoint=sim["ews_url"], credentials=credentials, auth_type=auth_type, **kwargs)
    return Account(mailbox, config=config, autodiscover=False, access_type=IMPERSONATION, default_timezone=UTC)


@pytest.fixture(autouse=True)
def fresh_protocols():
    # exchangelib caches one protocol (and its sessions) per endpoint and credentials; the
    # Basic and NTLM runs use the same credentials, so each test starts afresh.
    from exchangelib.protocol import close_connections

    close_connections()
    yield
    close_connections()


def _ews_requests(sim):
    stats = requests.get(f"{sim['base_url']}/_sim/stats", timeout=10).json()
    return stats["by_route"].get("ews", 0)


def _changes(folder, state):
    """One SyncFolderItems round from `state`: ({id: change type}, the new state)."""
    folder.item_sync_state = state
    seen = {}
    for change, item in folder.sync_items(only_fields=["subject", "start", "end"]):
        seen[item.id] = (change, getattr(item, "subject", None))
    return seen, folder.item_sync_state


@pytest.mark.parametrize("auth", ["basic", "ntlm", "oauth"])
def test_a_full_session_over_basic_ntlm_and_oauth(sim, recorder, auth):
    from exchangelib import CalendarItem, EWSDateTime
    from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY
    from exchangelib.properties import Attendee, Mailbox
    from exchangelib.version import Build

    # NTLM also lets exchangelib probe the server's version (ConvertId of "DUMMY").
    account = _account(sim, auth, probe=(auth == "ntlm"))
    if auth == "ntlm":
        assert account.version.build == Build(15, 2, 1118, 7)
        assert account.version.api_version.startswith("Exchange")
    calendar = account.calendar
    assert calendar.name == "Calendar" and calendar.folder_class == "IPF.Appointment"

    # A CalendarView: the organizer's class sessions, series expanded.
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    items = list(calendar.view(start=EWSDateTime.from_datetime(now), end=EWSDateTime.from_datetime(now + dt.timedelta(days=30))))
    assert items, "the demo organizer has class sessions in the next thirty days"
    assert all(isinstance(i, CalendarItem) for i in items)
    assert [i.start for i in items] == sorted(i.start for i in items)
    assert {i.type for i in items} <= {"Single", "Occurrence", "Exception"}
    assert "Occurrence" in {i.type for i in items}, "a tenth of the demo's meetings recur"

    # NTLM signs the connection in once: later calls need no new handshake, so the simulator
    # sees one HTTP request per EWS call exchangelib makes (a view is FindItem + GetItem).
    before, calls = _ews_requests(sim), len(recorder.answers)
    for _ in range(3):
        list(calendar.view(start=EWSDateTime.from_datetime(now), end=EWSDateTime.from_datetime(now + dt.timedelta(days=1))))
    calls = len(recorder.answers) - calls
    assert calls >= 3
    assert _ews_requests(sim) - before == calls, "no request was answered with a 401 challenge"

    # The sync baseline: every item of the folder, then nothing.
    baseline, state = _changes(calendar, None)
    assert len(baseline) > 100 and {c for c, _ in baseline.values()} == {"create"}
    idle, state = _changes(calendar, state)
    assert idle == {}

    # A meeting with a room inside its 180-day booking window, early in the morning (the demo's
    # room meetings start at 09:00 local), two hours apart per run so the runs never collide.
    hour = {"basic": 2, "ntlm": 4, "oauth": 6}[auth]
    when = (now + dt.timedelta(days=150)).replace(hour=hour, minute=0, second=0)
    subject = f"exchangelib {auth} session {uuid.uuid4().hex[:8]}"
    meeting = CalendarItem(
        account=account,
        folder=calendar,
        subject=subject,
        body="Booked by exchangelib",
        start=EWSDateTime.from_datetime(when),
        end=EWSDateTime.from_datetime(when + dt.timedelta(hours=1)),
        location="Room 2.01",
        resources=[Attendee(mailbox=Mailbox(email_address=ROOM))],
    )
    meeting.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    assert meeting.id and meeting.changekey
    meeting.refresh()
    assert meeting.subject == subject
    assert meeting.organizer.email_address == ORGANIZER
    assert [(r.mailbox.email_address, r.response_type) for r in meeting.resources] == [(ROOM, "Accept")]
    # The room's own calendar holds the booking.
    room = _account(sim, auth, mailbox=ROOM)
    window = dict(start=EWSDateTime.from_datetime(when - dt.timedelta(hours=1)), end=EWSDateTime.from_datetime(when + dt.timedelta(hours=3)))
    booked = [i for i in room.calendar.view(**window) if i.subject == subject]
    assert len(booked) == 1 and booked[0].legacy_free_busy_status == "Busy"

    # Free/busy (GetServerTimeZones, then GetUserAvailability in that zone's terms, here one
    # with daylight saving): the room is busy for that hour. The service account may not open
    # the room's calendar itself, so the detailed view comes back as free/busy only.
    if auth != "oauth":  # protocol-level calls carry no impersonation, which app tokens need
        from exchangelib import EWSTimeZone

        berlin = EWSTimeZone("Europe/Berlin")
        fb_start = EWSDateTime.from_datetime(when - dt.timedelta(hours=2)).astimezone(berlin)
        [view] = account.protocol.get_free_busy_info(
            accounts=[(ROOM, "Room", False)],
            start=fb_start,
            end=fb_start + dt.timedelta(hours=4),
            merged_free_busy_interval=60,
            requested_view="DetailedMerged",
        )
        assert view.view_type == "FreeBusyMerged"
        assert view.merged == "0020"
        busy = [e for e in view.calendar_events if e.start == EWSDateTime.from_datetime(when)]
        assert len(busy) == 1 and busy[0].busy_type == "Busy" and busy[0].details is None

    changes, state = _changes(calendar, state)
    assert changes == {meeting.id: ("create", subject)}

    # Moved half an hour later and renamed: the room decides again and still accepts.
    meeting.subject = subject + " (moved)"
    meeting.start = EWSDateTime.from_datetime(when + dt.timedelta(minutes=30))
    meeting.end = EWSDateTime.from_datetime(when + dt.timedelta(minutes=90))
    old_changekey = meeting.changekey
    meeting.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    assert meeting.changekey != old_changekey
    meeting.refresh()
    assert meeting.start == EWSDateTime.from_datetime(when + dt.timedelta(minutes=30))
    assert meeting.resources[0].response_type == "Accept"
    changes, state = _changes(calendar, state)
    assert changes == {meeting.id: ("update", subject + " (moved)")}

    # Deleted with cancellations: gone from the organizer's and the room's calendars.
    meeting_id = meeting.id
    meeting.delete(send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY)
    changes, state = _changes(calendar, state)
    assert list(changes) == [meeting_id] and changes[meeting_id][0] == "delete"
    assert not [i for i in room.calendar.view(**window) if i.subject.startswith(subject)]


def test_directory_rooms_and_id_conversion(sim, recorder):
    from exchangelib.properties import EWS_ID, HEX_ENTRY_ID, OWA_ID, AlternateId

    account = _account(sim, "basic")
    protocol = account.protocol
    [found] = protocol.resolve_names([ROOM])
    assert found.email_address == ROOM and found.name.startswith("Room 2.01")
    lists = list(protocol.get_roomlists())
    assert [l.email_address for l in lists] == ["allrooms@contoso.example"]
    rooms = [r.email_address for r in protocol.get_rooms(lists[0].email_address)]
    assert ROOM in rooms and all(r.startswith("room") for r in rooms)

    item = next(iter(account.calendar.view(
        start=dt.datetime.now(dt.timezone.utc), end=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)
    )))
    source = AlternateId(id=item.id, format=EWS_ID, mailbox=ORGANIZER)
    [hex_id] = protocol.convert_ids([source], destination_format=HEX_ENTRY_ID)
    assert all(c in "0123456789ABCDEF" for c in hex_id.id)
    [back] = protocol.convert_ids([hex_id], destination_format=EWS_ID)
    assert back.id == item.id
    # The simulator's OwaId is the id Graph uses (the same bytes, URL-safe base64).
    [owa] = protocol.convert_ids([source], destination_format=OWA_ID)
    assert owa.id == item.id.replace("+", "-").replace("/", "_")


def test_throttling_is_answered_with_a_back_off_that_exchangelib_honours(sim, recorder):
    from exchangelib import EWSDateTime, FaultTolerance

    account = _account(sim, "basic", retry_policy=FaultTolerance(max_wait=60))
    calendar = account.calendar
    faults = requests.post(f"{sim['base_url']}/_sim/faults", json={"throttle_next": {"n": 1, "retry_after_secs": 1}}, timeout=10)
    assert faults.status_code == 204
    throttled_before = requests.get(f"{sim['base_url']}/_sim/stats", timeout=10).json()["throttled_429"]
    started = time.monotonic()
    now = dt.datetime.now(dt.timezone.utc)
    items = list(calendar.view(start=EWSDateTime.from_datetime(now), end=EWSDateTime.from_datetime(now + dt.timedelta(days=7))))
    assert items
    assert time.monotonic() - started >= 1.0, "exchangelib waited BackOffMilliseconds"
    stats = requests.get(f"{sim['base_url']}/_sim/stats", timeout=10).json()
    assert stats["throttled_429"] == throttled_before + 1
    assert any(status == 500 and b"ErrorServerBusy" in body for status, body in recorder.answers)


def test_a_recurring_meeting_expands_and_its_occurrences_are_reachable(sim, recorder):
    from exchangelib import CalendarItem, EWSDateTime
    from exchangelib.items import SEND_TO_NONE
    from exchangelib.recurrence import NumberedPattern, Recurrence, WeeklyPattern

    account = _account(sim, "basic")
    calendar = account.calendar
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    first = (now + dt.timedelta(days=160)).replace(hour=3, minute=0, second=0)
    weekday = first.isoweekday()  # exchangelib numbers weekdays 1 (Monday) to 7
    series = CalendarItem(
        account=account,
        folder=calendar,
        subject=f"Weekly exchangelib series {uuid.uuid4().hex[:8]}",
        start=EWSDateTime.from_datetime(first),
        end=EWSDateTime.from_datetime(first + dt.timedelta(minutes=45)),
        recurrence=Recurrence(pattern=WeeklyPattern(interval=1, weekdays=[weekday]), boundary=NumberedPattern(start=first.date(), number=3)),
    )
    series.save(send_meeting_invitations=SEND_TO_NONE)
    try:
        master = account.calendar.get(id=series.id)
        assert master.type == "RecurringMaster"
        assert master.recurrence.boundary.number == 3
        assert master.first_occurrence.start == EWSDateTime.from_datetime(first)
        assert master.last_occurrence.start == EWSDateTime.from_datetime(first + dt.timedelta(weeks=2))
        view = [
            i
            for i in calendar.view(start=EWSDateTime.from_datetime(first - dt.timedelta(days=1)), end=EWSDateTime.from_datetime(first + dt.timedelta(weeks=3)))
            if i.subject == series.subject
        ]
        assert [i.type for i in view] == ["Occurrence"] * 3
        second = master.occurrence(index=2)
        second.refresh()
        assert second.start == EWSDateTime.from_datetime(first + dt.timedelta(weeks=1))
        back = second.recurring_master()
        back.refresh()
        assert back.id == master.id
    finally:
        series.delete(send_meeting_cancellations=SEND_TO_NONE)
