#!/usr/bin/env bash
# Runs calbridge's whole test suite: the Rust workspace (unit, property, contract and
# end-to-end tests against the built-in Exchange simulator) and the third-party client tests
# (Microsoft's Python Graph SDK, and exchangelib over EWS, against the simulator), then
# schemathesis over the REST API, then the admin console in headless Chromium, and last a short
# fuzzing run of the parsers of untrusted input (scripts/fuzz.sh, 20 s a target).
#
# Usage: scripts/test.sh            (from the repository root)
# Environment:
#   CALBRIDGE_PROTOCOL_DIR  Microsoft's schemas and examples (default: ../shared/protocol)
#   PROPTEST_CASES          cases per property test (default 1000)
#   PYTHON                  the Python interpreter for the client tests (default: python3)
#   CALBRIDGE_TEST_POSTGRES the PostgreSQL server for the store tests (default:
#                           postgres://postgres@127.0.0.1:5432/postgres; without one they skip)
#   FUZZ_SECONDS            seconds of fuzzing per target (default 20)
#   CALBRIDGE_CONVERGENCE   `long`: the convergence suite's long form (200 mailboxes x 200
#                           events, 60 kills of calbridge; tens of minutes) instead of the short
#                           one (20 x 20, 20 kills, about half a minute for both protocols)
#   CALBRIDGE_CONVERGENCE_SEED  replays a convergence run (each run prints its seed)
set -euo pipefail
cd "$(dirname "$0")/.."

export CALBRIDGE_PROTOCOL_DIR="${CALBRIDGE_PROTOCOL_DIR:-$(cd .. && pwd)/shared/protocol}"
PYTHON="${PYTHON:-python3}"

echo "== Python client test dependencies"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt

echo "== Rust workspace tests"
cargo test --workspace --all-targets

echo "== Third-party clients against the simulator (Microsoft's msgraph-sdk, msal, azure-identity; exchangelib over EWS)"
# Built with the workspace's features, so nothing is compiled twice.
cargo build --workspace --examples --quiet
CALBRIDGE_SIM_CMD="$(pwd)/target/debug/examples/sim-server" "$PYTHON" -m pytest -q tests/python

echo "== The REST API under schemathesis (every check, against calbridge serve and the simulator)"
bash scripts/schemathesis.sh

echo "== The admin console in a browser (Debian's Chromium, headless, against calbridge serve and the simulator)"
bash scripts/browser.sh

echo "== Fuzzing the EWS XML and Graph JSON parsers (scripts/fuzz.sh, ${FUZZ_SECONDS:-20} s a target)"
bash scripts/fuzz.sh
