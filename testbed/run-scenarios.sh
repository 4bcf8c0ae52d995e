#!/usr/bin/env bash
# Runs testbed scenarios (default: every built-in one) against real tsod
# processes and prints each report; exits non-zero if any scenario failed:
# true time outside a synchronized interval, a TSO timestamp duplicated,
# out of real-time order or far from true time, an event that could not
# be applied, or a check the scenario states that did not hold (an
# expect-leader, a max-gap-ms). Closes with "scenarios: N passed, N failed".
#
#   testbed/run-scenarios.sh                      # the full set (about 33 minutes)
#   testbed/run-scenarios.sh --short              # the ones marked short (CI-sized)
#   testbed/run-scenarios.sh gps-spoof clock-step # some of them
#   PROFILE=release testbed/run-scenarios.sh      # with release binaries
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-debug}
flag=()
[ "$profile" = release ] && flag=(--release)
cargo build -q --locked "${flag[@]}" -p tsod -p tsod-testbed
# The binaries just built (tsod-testbed runs the tsod beside it).
bin=${CARGO_TARGET_DIR:-target}/$profile/tsod-testbed
if [ "$#" -eq 0 ]; then
    mapfile -t names < <("$bin" scenarios | cut -d' ' -f1)
elif [ "$1" = --short ]; then
    # A short scenario's description starts with "short" (Scenario::is_short).
    mapfile -t names < <("$bin" scenarios | awk 'tolower($2) ~ /^short/ { print $1 }')
else
    names=("$@")
fi
passed=0
failed=0
for name in "${names[@]}"; do
    echo "== scenario $name"
    if "$bin" run "$name"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "scenario $name FAILED"
    fi
done
echo "scenarios: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
