#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) and fails if any of them crashes.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS (default 80) is the fuzzing time IN TOTAL, divided equally among the targets (at least
# 1 second each); building comes on top of it. Each target starts from its committed seeds
# (seeds/TARGET, read only) and the working corpus it grew before (corpus/TARGET, not
# committed). A crash leaves its input in artifacts/TARGET/; reproduce it with
# `cargo +nightly fuzz run TARGET artifacts/TARGET/crash-...`, then add it to
# tests/fuzz_regressions.rs with the fix.
#
# cargo-fuzz needs unstable compiler flags: this uses the nightly toolchain when rustup has one,
# and otherwise (or with FUZZ_STABLE=1) the default toolchain with RUSTC_BOOTSTRAP=1, since a
# machine may have no other toolchain and no way to fetch one.
set -euo pipefail
cd "$(dirname "$0")"

total="${1:-80}"
shift || true
if ! [[ "$total" =~ ^[0-9]+$ ]] || [ "$total" -lt 1 ]; then
    echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi

if [ "${FUZZ_STABLE:-0}" != 1 ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list)
fi
per=$((total / ${#targets[@]}))
[ "$per" -ge 1 ] || per=1

echo "== fuzz: building ${#targets[@]} targets (${fuzz[*]})"
"${fuzz[@]}" build

echo "== fuzz: ${per}s each, ${#targets[@]} targets"
mkdir -p artifacts
failed=()
summary=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    dirs=("corpus/$target")
    [ -d "seeds/$target" ] && dirs+=("seeds/$target")
    log="artifacts/$target.log"
    # -timeout: one input taking over 10 s is a hang, reported like a crash.
    if timeout $((per + 120)) "${fuzz[@]}" run "$target" "${dirs[@]}" -- \
        -max_total_time="$per" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$target")
        tail -n 60 "$log"
    fi
    runs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)"
    summary+=("$(printf '%-16s %-7s %10s runs  corpus %s' "$target" "$status" "${runs:-?}" \
        "$(find "corpus/$target" -type f | wc -l)")")
done

printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: ${#failed[@]} target(s) crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash"
