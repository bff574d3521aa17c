#!/usr/bin/env bash
# Reader and grouper throughput: parapply vs `mariadb-binlog FILE > /dev/null`
# on the same synthetic binlog, plus peak RSS of `parapply inspect --groups`
# on that file and on one twice its size. docs/benchmarks.md records a run.
#
#   benches/reader_vs_mariadb_binlog.sh [WORKDIR]
#
# WORKDIR (default: a temporary directory, removed at the end) receives
# 200mib/ and 400mib/ with the generated binlogs (~630 MB in all).
# Needs: cargo, mariadb-binlog (MariaDB server or client package),
# /usr/bin/time (GNU time), and hyperfine if installed (else plain timing).
# Set RUNS to change hyperfine's run count (default 3).
set -euo pipefail

cd "$(dirname "$0")/.."
runs=${RUNS:-3}
if [[ $# -ge 1 ]]; then
    work=$1
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
target=${CARGO_TARGET_DIR:-target}

echo "== build (release)"
cargo build --release --quiet
parapply="$target/release/parapply"

echo "== generate 200 MiB and 400 MiB binlogs (16 databases, small row transactions)"
for mib in 200 400; do
    cargo bench --quiet --bench benches -- --generate-only "$work/${mib}mib" --size-mib "$mib"
done
f200="$work/200mib/synth-bin.000001"
f400="$work/400mib/synth-bin.000001"

echo "== mariadb-binlog reads the files without error"
for f in "$f200"; do
    mariadb-binlog "$f" >/dev/null 2>"$work/mariadb-binlog.err"
    if [[ -s "$work/mariadb-binlog.err" ]]; then
        cat "$work/mariadb-binlog.err"
        exit 1
    fi
done

echo "== time: mariadb-binlog vs parapply inspect --groups (200 MiB file)"
if command -v hyperfine >/dev/null; then
    hyperfine --warmup 1 --runs "$runs" --export-markdown "$work/hyperfine.md" \
        "mariadb-binlog $f200 > /dev/null" \
        "$parapply inspect --groups $f200 > /dev/null"
    cat "$work/hyperfine.md"
else
    time (mariadb-binlog "$f200" >/dev/null)
    time ("$parapply" inspect --groups "$f200" >/dev/null)
fi

echo "== peak RSS of parapply inspect --groups"
for f in "$f200" "$f400"; do
    /usr/bin/time -v "$parapply" inspect --groups "$f" 2>"$work/time.txt" >/dev/null
    printf '%s (%s bytes): ' "$(basename "$(dirname "$f")")" "$(stat -c %s "$f")"
    grep -E "Maximum resident set size|Elapsed" "$work/time.txt" | tr -s ' \t' ' ' | paste -sd ';'
done
echo "== peak RSS of mariadb-binlog (200 MiB file)"
/usr/bin/time -v mariadb-binlog "$f200" 2>"$work/time.txt" >/dev/null
grep -E "Maximum resident set size|Elapsed" "$work/time.txt" | tr -s ' \t' ' ' | paste -sd ';'

echo "== criterion: reader and grouper in-process (200 MiB)"
cargo bench --quiet --bench benches -- reader
