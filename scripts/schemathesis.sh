#!/usr/bin/env bash
# Runs schemathesis (every check) over the whole REST API of a real `calbridge serve`: an
# SQLite file in a temporary directory, the built-in Exchange simulator on 127.0.0.1, an admin
# API key, and a few resources (a connection, calendars, an event, a site, a webhook) so the
# generated requests reach more than 404s. Outbound requests are limited to 127.0.0.1.
#
# Usage: scripts/schemathesis.sh   (from the repository root; needs `schemathesis` from
#        tests/python/requirements.txt)
# Environment: SCHEMATHESIS_MAX_EXAMPLES (default 30), SCHEMATHESIS_WORKERS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -p calbridge --quiet
bin="$(pwd)/target/debug/calbridge"
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Waits for a line starting with $2 in file $1 and prints the first URL on it.
url_from() {
  for _ in $(seq 1 300); do
    if line=$(grep -m1 "$2" "$1" 2>/dev/null); then
      echo "$line" | grep -oE 'https?://[0-9.:]+' | head -n1
      return 0
    fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

export CALBRIDGE_MASTER_KEY="$("$bin" secrets new-key)"
export CALBRIDGE_STORE="sqlite://$tmp/calbridge.db"
export CALBRIDGE_CONFIG="$tmp/none.toml"
: > "$CALBRIDGE_CONFIG"
export CALBRIDGE_OUTBOUND_HOSTS=127.0.0.1
key="$("$bin" apikey create --scope admin --name schemathesis 2>/dev/null)"

"$bin" sim --listen 127.0.0.1:0 > "$tmp/sim.out" 2>&1 &
pids+=($!)
sim="$(url_from "$tmp/sim.out" '  Graph:')"
"$bin" serve --listen 127.0.0.1:0 --sync-interval 30 > "$tmp/serve.out" 2>"$tmp/serve.err" &
pids+=($!)
api="$(url_from "$tmp/serve.out" 'calbridge API listening')"
echo "simulator $sim, API $api"

# A connection to the simulator, a site, two calendars, a synced calendar with a local event
# (id `seed-event`), a class session (id `seed-session`) and a webhook (to a closed port: its
# deliveries fail and are retried).
python3 - "$api" "$key" "$sim" <<'PY'
import json, sys, urllib.request
api, key, sim = sys.argv[1:]
def call(method, path, body=None):
    req = urllib.request.Request(api + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)
conn = call("POST", "/connections", {"name": "sim", "settings": {"kind": "graph", "tenant_id": "contoso.example",
            "client_id": "3f6a1c2e-8d4b-4e7a-9c1f-2b5d7e9a0c13", "authority_url": sim, "graph_url": sim},
            "secret": "demo-secret-change-me", "default_organizer": "scheduler@contoso.example"})["id"]
site = call("POST", "/sites", {"name": "North", "connection_id": conn})["id"]
cal = call("POST", "/calendars", {"email": "scheduler@contoso.example", "kind": "person", "connection_id": conn})["id"]
call("POST", "/calendars", {"email": "room201@contoso.example", "kind": "room", "site_id": site})
call("POST", f"/calendars/{cal}/sync")
call("POST", f"/calendars/{cal}/events", {"id": "seed-event", "subject": "Seed",
     "start": "2030-01-07T09:00:00Z", "end": "2030-01-07T10:00:00Z"})
call("POST", "/sessions", {"id": "seed-session", "connection_id": conn, "subject": "Seed session",
     "start": "2030-01-08T09:00:00Z", "end": "2030-01-08T10:00:00Z", "instructors": ["ann@contoso.example"]})
call("POST", "/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["event.created"]})
assert (conn, site, cal) == (1, 1, 1), "tests/schemathesis/schemathesis.toml expects the ids 1"
PY

schemathesis --config-file tests/schemathesis/schemathesis.toml run "$api/openapi.json" \
  -H "Authorization: Bearer $key" \
  --checks all \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-30}" \
  --workers "${SCHEMATHESIS_WORKERS:-2}" \
  --suppress-health-check all \
  --seed 1

if grep -E 'panicked|internal error' "$tmp/serve.err"; then
  echo "the server logged an internal error during the run (above)" >&2
  exit 1
fi
