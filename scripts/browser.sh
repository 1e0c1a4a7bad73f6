#!/usr/bin/env bash
# Runs the admin console's browser tests: Debian's Chromium (headless), driven by playwright-core
# (tests/browser), against a real `calbridge serve` and the simulator on 127.0.0.1. Writes a
# screenshot of each page to docs/screenshots/.
#
# Usage: scripts/browser.sh   (from the repository root; needs node, npm and /usr/bin/chromium,
#        which .ci/run installs: apt-get install chromium)
# Environment: CHROMIUM (default /usr/bin/chromium), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "Chromium is missing: install Debian's package (apt-get install chromium) or set CHROMIUM" >&2
  exit 1
fi
cargo build -p calbridge --quiet
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
node tests/browser/console.test.mjs
