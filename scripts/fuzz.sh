#!/usr/bin/env bash
# Fuzzes calbridge's parsers of untrusted input with libFuzzer (cargo-fuzz): the EWS XML
# answers the client reads, the EWS requests the simulator reads, and the Microsoft Graph JSON
# the client reads. The targets live in fuzz/, a Cargo workspace of its own (the main build
# never compiles libFuzzer); docs/reliability.md ("Fuzzing") describes them.
#
# Each target runs for FUZZ_SECONDS from a seed corpus: Microsoft's documented EWS and Graph
# examples, copied from the protocol folder into a temporary directory at run time (they are
# third-party data and never enter the repository). What the fuzzer learns is kept in
# target/fuzz/corpus/<target>, so later runs start from it. Any crash, hang (one input taking
# longer than FUZZ_TIMEOUT seconds) or memory growth past FUZZ_RSS_MB fails the script; the
# input that caused it is saved in target/fuzz/artifacts/<target>/ and the command that
# replays it is printed.
#
# Toolchain: cargo-fuzz is installed if missing (`cargo install cargo-fuzz --locked`), and
# libFuzzer itself is C++ (a C++ compiler must be present; .ci/run installs g++). The targets
# are built with `--sanitizer none`: calbridge's parsers are safe Rust, so the bugs to find are
# panics, hangs and unbounded allocation, which libFuzzer detects without AddressSanitizer.
# Without a sanitizer cargo-fuzz passes rustc no unstable (-Z) flag, so the stable toolchain
# builds the targets and RUSTC_BOOTSTRAP is not needed (AddressSanitizer would need
# `-Zsanitizer`: a nightly toolchain, or RUSTC_BOOTSTRAP=1 on stable). They are built with
# `--dev` (fuzz/Cargo.toml sets the dev profile to opt-level 1): debug assertions and
# overflow checks on, and a build about twice as fast as cargo-fuzz's release default, which
# keeps the CI step within a few minutes.
#
# Usage: scripts/fuzz.sh [TARGET...]     (from the repository root; default: every target)
# Environment:
#   FUZZ_SECONDS            seconds per target (default 20, what CI runs; try 600 for a longer run)
#   FUZZ_TIMEOUT            seconds one input may take before it counts as a hang (default 10)
#   FUZZ_RSS_MB             memory limit of the fuzzing process in MB (default 1024)
#   CALBRIDGE_PROTOCOL_DIR  Microsoft's examples (default: ../shared/protocol); without them
#                           the targets start from an empty corpus
#   CARGO_TARGET_DIR        build directory; the fuzz build goes to its fuzz/ subdirectory
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-10}"
FUZZ_RSS_MB="${FUZZ_RSS_MB:-1024}"
protocol="${CALBRIDGE_PROTOCOL_DIR:-$(cd .. && pwd)/shared/protocol}"
# The fuzz build uses other compiler flags (coverage instrumentation): its own directory, so it
# never invalidates the main build.
target_dir="${CARGO_TARGET_DIR:-$root/target}/fuzz"
flags=(--fuzz-dir fuzz --dev --sanitizer none --target-dir "$target_dir")

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "== building the fuzz targets ($(cargo fuzz --version))"
cargo fuzz build "${flags[@]}"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT

# Seeds: EWS answers and faults for ews_response, EWS requests for ews_request, the JSON
# bodies of Graph's documented answers, requests and notifications for the Graph targets (an
# .http file's body is everything after its first empty line).
seed() {
  local target=$1 dir="$seeds/$1"
  mkdir -p "$dir"
  case "$target" in
    ews_response | ews_request)
      # Files are named <Operation>/<NN>-<request|response>-<page>.xml; the operation goes
      # into the copy's name, as the pages repeat across operations.
      local pattern=(-name '*-response-*.xml' -o -path '*/Faults/*.xml') f op
      [ "$target" = ews_request ] && pattern=(-name '*-request-*.xml')
      if [ -d "$protocol/ews/examples" ]; then
        while IFS= read -r f; do
          op=$(basename "$(dirname "$f")")
          cp "$f" "$dir/$op-$(basename "$f")"
        done < <(find "$protocol/ews/examples" -type f \( "${pattern[@]}" \))
      fi
      ;;
    graph_json | graph_notification)
      if [ -d "$protocol/graph/examples" ]; then
        local n=0 f
        while IFS= read -r f; do
          n=$((n + 1))
          case "$f" in
            *.http) awk 'body { print } /^\r?$/ { body = 1 }' "$f" > "$dir/$n" ;;
            *) cp "$f" "$dir/$n" ;;
          esac
          [ -s "$dir/$n" ] || rm -f "$dir/$n"
        done < <(find "$protocol/graph/examples" \( -name '*.http' -o -name '*.json' \) ! -name manifest.json)
      fi
      ;;
  esac
  echo "$dir"
}

failed=()
for t in "${targets[@]}"; do
  corpus="$target_dir/corpus/$t"
  artifacts="$target_dir/artifacts/$t"
  log="$target_dir/logs/$t.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  dir=$(seed "$t")
  echo "== $t: ${FUZZ_SECONDS}s from $(ls "$dir" | wc -l) seeds and $(ls "$corpus" | wc -l) corpus entries"
  if cargo fuzz run "${flags[@]}" "$t" "$corpus" "$dir" -- \
      -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb="$FUZZ_RSS_MB" \
      -artifact_prefix="$artifacts/" -print_final_stats=1 > "$log" 2>&1; then
    # libFuzzer's summary: executions, executions per second, corpus, peak memory.
    grep -E '^(Done|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|slowest_unit_time_sec|peak_rss_mb))' "$log" \
      | sed 's/^/   /'
    echo "   corpus: $(ls "$corpus" | wc -l) entries"
  else
    tail -n 60 "$log"
    echo "!! $t failed; the input is in $artifacts/ (log: $log)" >&2
    echo "!! replay: cargo fuzz run ${flags[*]} $t $artifacts/<file>" >&2
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found a crash, hang or memory blow-up in: ${failed[*]}" >&2
  exit 1
fi
echo "== fuzzing: no crash in ${targets[*]}"
