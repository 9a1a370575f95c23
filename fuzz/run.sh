#!/bin/sh
# Run every fuzz target (or those named) for a bounded time each.
#
#   fuzz/run.sh [target...]
#
# FUZZ_SECONDS   seconds per target (default 60)
# FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 5)
# FUZZ_MAX_LEN   largest input in bytes (default 65536)
# FUZZ_SANITIZER address (default) or none, when the address sanitizer is not available
#
# cargo-fuzz needs a nightly compiler; with only a stable one installed the script sets
# RUSTC_BOOTSTRAP=1. New inputs go to fuzz/corpus/<target>/ (seeded from fuzz/seeds/<target>/,
# written by fuzz/seeds.py from the protocol docs); a failing input is saved in
# fuzz/artifacts/<target>/ and the script stops with a non-zero status. Copy such an input to
# fuzz/regressions/<target>/ with the fix: natter-proto's `fuzz_corpus` test keeps checking it.
set -eu
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
timeout=${FUZZ_TIMEOUT:-5}
max_len=${FUZZ_MAX_LEN:-65536}
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1
if [ "$#" -eq 0 ]; then
    set -- $(cargo fuzz list)
fi
cargo fuzz build -O -s "$sanitizer"
for target in "$@"; do
    mkdir -p "corpus/$target" "seeds/$target" "regressions/$target"
    echo "== $target: ${seconds}s"
    cargo fuzz run -O -s "$sanitizer" "$target" "corpus/$target" "seeds/$target" \
        "regressions/$target" -- \
        -max_total_time="$seconds" -timeout="$timeout" -max_len="$max_len" \
        -print_final_stats=1
done
