"""Microsoft's own Python clients against calbridge's Exchange simulator.

msal (client credentials), azure-identity's ClientSecretCredential and the msgraph-sdk
GraphServiceClient (Kiota) run unmodified against the simulator: token, calendarView,
calendarView/delta, event creation and getSchedule.

How the simulator is reached (the least invasive options that work with the unmodified SDKs):

* HTTPS with a throw-away CA. msal (``authority.canonicalize``) and azure-identity
  (``normalize_authority``) accept only ``https://`` authorities, so the simulator is started
  with ``--tls``: it makes a CA and a certificate for 127.0.0.1 at run time and writes the CA
  to a file. The test points ``REQUESTS_CA_BUNDLE`` (requests: msal, azure-identity) and
  ``SSL_CERT_FILE`` (httpx: msgraph-sdk) at that file. Nothing is trusted system-wide.
* ``instance_discovery=False`` (msal) / ``disable_instance_discovery=True`` (azure-identity):
  otherwise MSAL asks login.microsoftonline.com whether the authority host is known. The
  simulator also answers ``/common/discovery/instance`` itself, but MSAL sends that query to
  Microsoft's host, not to the authority.
* Kiota only attaches tokens to allowed hosts (Microsoft's national clouds by default), so the
  Graph client is built from public parts: ``AzureIdentityAuthenticationProvider`` with
  ``allowed_hosts=["127.0.0.1"]`` and ``scopes=["https://graph.microsoft.com/.default"]``, a
  ``GraphRequestAdapter`` whose ``base_url`` is ``{simulator}/v1.0``, and
  ``GraphServiceClient(request_adapter=...)``.

The simulator process: ``CALBRIDGE_SIM_CMD`` if set (a command line that accepts
``--tls --ca-out FILE --exit-on-stdin-eof`` and prints one JSON line with ``base_url``,
``tenant_id``, ``tenant_domain``, ``client_id``, ``client_secret``, ``ca_cert_file``), else
the ``sim-server`` example of the ``calbridge-sim`` crate, built with cargo. It serves the
bundled demo organisation (Contoso Learning Centre) and stops when the test closes its stdin.

Run: ``python3 -m pip install -r tests/python/requirements.txt && python3 -m pytest -q tests/python``
from the repository root.
"""

import asyncio
import datetime as dt
import json
import os
import shlex
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ORGANIZER = "scheduler@contoso.example"
ROOM = "room201@contoso.example"


def _sim_command():
    custom = os.environ.get("CALBRIDGE_SIM_CMD")
    if custom:
        return shlex.split(custom)
    build = subprocess.run(
        ["cargo", "build", "--quiet", "-p", "calbridge-sim", "--example", "sim-server", "--message-format=json"],
        cwd=REPO,
        check=True,
        stdout=subprocess.PIPE,
    )
    for line in build.stdout.decode().splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "sim-server" and msg.get("executable"):
            return [msg["executable"]]
    raise RuntimeError("cargo did not report the sim-server executable")


@pytest.fixture(scope="module")
def sim():
    tmp = tempfile.mkdtemp(prefix="calbridge-sim-py-")
    ca = os.path.join(tmp, "ca.pem")
    proc = subprocess.Popen(
        _sim_command() + ["--tls", "--ca-out", ca, "--exit-on-stdin-eof"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        line = proc.stdout.readline().decode()
        if not line:
            raise RuntimeError("the simulator exited before printing its address")
        info = json.loads(line)
        ca_file = info.get("ca_cert_file") or ca
        saved = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
        os.environ["REQUESTS_CA_BUNDLE"] = ca_file
        os.environ["SSL_CERT_FILE"] = ca_file
        yield info
    finally:
        for k, v in locals().get("saved", {}).items():
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


def test_msal_acquires_a_token_and_reports_aadsts_errors(sim):
    import msal

    app = msal.ConfidentialClientApplication(
        sim["client_id"],
        client_credential=sim["client_secret"],
        authority=f"{sim['base_url']}/{sim['tenant_domain']}",
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    assert result["access_token"].count(".") == 2

    wrong = msal.ConfidentialClientApplication(
        sim["client_id"],
        client_credential="not-the-secret",
        authority=f"{sim['base_url']}/{sim['tenant_id']}",
        instance_discovery=False,
    )
    result = wrong.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result.get("error") == "invalid_client", result
    assert 7000215 in result.get("error_codes", [])
    assert "not-the-secret" not in json.dumps(result)


def _graph_client(sim):
    from azure.identity import ClientSecretCredential
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient

    credential = ClientSecretCredential(
        sim["tenant_id"],
        sim["client_id"],
        sim["client_secret"],
        authority=sim["base_url"],
        disable_instance_discovery=True,
    )
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=[GRAPH_SCOPE], allowed_hosts=["127.0.0.1"]
    )
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = f"{sim['base_url']}/v1.0"
    return GraphServiceClient(request_adapter=adapter), credential


def _window(days_back=1, days_ahead=14):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return (now - dt.timedelta(days=days_back)).strftime(fmt), (now + dt.timedelta(days=days_ahead)).strftime(fmt)


def test_msgraph_sdk_calendar_view_create_delta_and_schedule(sim):
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.models.attendee import Attendee
    from msgraph.generated.models.attendee_type import AttendeeType
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.event import Event
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.users.item.calendar.get_schedule.get_schedule_post_request_body import (
        GetSchedulePostRequestBody,
    )
    from msgraph.generated.users.item.calendar_view.calendar_view_request_builder import (
        CalendarViewRequestBuilder,
    )
    from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder

    client, credential = _graph_client(sim)

    async def scenario():
        user = await client.users.by_user_id(ORGANIZER).get()
        assert user.mail == ORGANIZER

        start, end = _window()
        config = RequestConfiguration(
            query_parameters=CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(
                start_date_time=start, end_date_time=end, top=25
            )
        )
        config.headers.add("Prefer", 'outlook.timezone="W. Europe Standard Time"')
        page = await client.users.by_user_id(ORGANIZER).calendar_view.get(request_configuration=config)
        assert page.value, "the demo organizer has class sessions in the next two weeks"
        assert len(page.value) <= 25
        assert page.odata_next_link and "$skip=" in page.odata_next_link
        first = page.value[0]
        assert first.subject and first.id and first.i_cal_u_id
        assert first.start.time_zone == "W. Europe Standard Time"
        starts = [e.start.date_time for e in page.value]
        assert starts == sorted(starts)

        when = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=200)
        event = Event(
            subject="msgraph-sdk session",
            body=ItemBody(content_type=BodyType.Text, content="Created by Microsoft's Python SDK"),
            start=DateTimeTimeZone(date_time=when.strftime("%Y-%m-%dT%H:%M:%S"), time_zone="UTC"),
            end=DateTimeTimeZone(date_time=(when + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), time_zone="UTC"),
            attendees=[Attendee(email_address=EmailAddress(address=ROOM), type=AttendeeType.Resource)],
            transaction_id=str(uuid.uuid4()),
        )
        created = await client.users.by_user_id(ORGANIZER).events.post(event)
        assert created.id.startswith("AAMk")
        assert created.subject == "msgraph-sdk session"
        assert created.body_preview == "Created by Microsoft's Python SDK"
        again = await client.users.by_user_id(ORGANIZER).events.post(event)
        assert again.id == created.id, "transactionId deduplicates"
        fetched = await client.users.by_user_id(ORGANIZER).events.by_event_id(created.id).get()
        assert fetched.change_key
        # 200 days ahead is outside the room's 180-day booking window: declined.
        assert fetched.attendees[0].status.response.value == "declined"

        # calendarView/delta: a full round, then the new event as a change.
        dstart, dend = _window(days_back=0, days_ahead=3)
        delta_config = RequestConfiguration(
            query_parameters=DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
                start_date_time=dstart, end_date_time=dend
            )
        )
        delta_config.headers.add("Prefer", "odata.maxpagesize=5")
        builder = client.users.by_user_id(ROOM).calendar_view.delta
        resp = await builder.get(request_configuration=delta_config)
        seen, pages = list(resp.value), 1
        while resp.odata_next_link:
            resp = await builder.with_url(resp.odata_next_link).get(request_configuration=delta_config)
            seen += resp.value
            pages += 1
        assert resp.odata_delta_link and "$deltatoken=" in resp.odata_delta_link
        assert len({e.id for e in seen}) == len(seen)
        idle = await builder.with_url(resp.odata_delta_link).get()
        assert idle.value == [] and idle.odata_delta_link

        body = GetSchedulePostRequestBody(
            schedules=[ROOM, "nobody@elsewhere.example"],
            start_time=DateTimeTimeZone(date_time=dstart[:-1], time_zone="UTC"),
            end_time=DateTimeTimeZone(date_time=dend[:-1], time_zone="UTC"),
            availability_view_interval=60,
        )
        schedule = await client.users.by_user_id(ORGANIZER).calendar.get_schedule.post(body)
        assert len(schedule.value) == 2
        assert len(schedule.value[0].availability_view) == 72
        assert schedule.value[1].error is not None

    try:
        asyncio.run(scenario())
    finally:
        credential.close()
