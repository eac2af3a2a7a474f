#!/usr/bin/env bash
# PostgresStore against its floor, in one run: `cargo bench --bench postgres` (the crate,
# through sqlx), then `pgbench -M prepared` calling the same function with the same arguments
# on the same server and data, at 1, 4 and 16 clients, on spread links and on one hot link.
# Prints a Markdown table of redemptions per second and their ratio (crate / pgbench).
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test benches/pgbench.sh
#
# It runs twice: with synchronous_commit = on (the server's default: each commit waits for the
# disk to flush the WAL, which bounds both sides alike) and off (commits do not wait, so the
# CPU cost of the server and of the client shows). SECONDS_PER_RUN (default 5) sets how long
# each pgbench run lasts; SYNC_COMMIT=on or off runs one mode only.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${DATABASE_URL:-}" ]]; then
    echo "skipping: DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"
    exit 0
fi
command -v pgbench >/dev/null || { echo "pgbench not found (Debian: postgresql-client)"; exit 1; }
seconds="${SECONDS_PER_RUN:-5}"
schema=magic_link_bench

script="$(mktemp -d)"
trap 'rm -rf "$script"' EXIT
# The statement PostgresStore::redeem sends, with the ids and times the bench uses.
cat >"$script/spread.sql" <<SQL
\set n random(0, 99999)
SELECT r_code, r_account, r_number, r_flow, r_language FROM "$schema".redeem(lpad(to_hex((:n)::bigint), 32, '0')::uuid, gen_random_uuid(), NULL, '2030-01-01T00:00:00Z', '2030-01-02T00:00:00Z');
SQL
cat >"$script/hot.sql" <<SQL
SELECT r_code, r_account, r_number, r_flow, r_language FROM "$schema".redeem(lpad(to_hex(100000::bigint), 32, '0')::uuid, gen_random_uuid(), NULL, '2030-01-01T00:00:00Z', '2030-01-02T00:00:00Z');
SQL

crate_rate() { # shape tasks -> redemptions/s from criterion's mean
    python3 - "target/criterion/postgres_redeem/$1_$2/new/estimates.json" <<'PY'
import json, sys
mean = json.load(open(sys.argv[1]))["mean"]["point_estimate"]
print(f"{1e9 / mean:.0f}")
PY
}

# The first bench builds the schema; the others reuse it.
reuse=""
for mode in ${SYNC_COMMIT:-on off}; do
    echo
    echo "synchronous_commit = $mode"
    echo
    echo "| links | tasks | crate (redemptions/s) | pgbench -M prepared (tps) | ratio |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for shape in spread hot; do
        for clients in 1 4 16; do
            # Each pair back to back, on the data the bench has just built, so that both
            # sides meet the same load on a shared machine.
            MAGIC_LINK_BENCH_REUSE="$reuse" MAGIC_LINK_BENCH_SYNC_COMMIT="$mode" \
                cargo bench --features postgres \
                --bench postgres -- --noplot "^postgres_redeem/$shape/$clients\$" >&2
            reuse=1
            jobs=$(( clients < 2 ? 1 : 2 ))
            tps=$(PGOPTIONS="-c synchronous_commit=$mode" \
                  pgbench "$DATABASE_URL" -n -M prepared -c "$clients" -j "$jobs" -T "$seconds" \
                    -f "$script/$shape.sql" 2>"$script/pgbench.log" \
                  | awk '/^tps = / { printf "%.0f", $3 }')
            if [[ -z "$tps" ]] || grep -qi "error" "$script/pgbench.log"; then
                cat "$script/pgbench.log" >&2
                exit 1
            fi
            ours=$(crate_rate "$shape" "$clients")
            ratio=$(python3 -c "print(f'{$ours / $tps:.2f}x')")
            echo "| $shape | $clients | $ours | $tps | $ratio |"
        done
    done
done
