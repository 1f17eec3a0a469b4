#!/usr/bin/env bash
# Run the test suite as if it were INSTANT (UTC, 'YYYY-MM-DD HH:MM:SS'), under Debian's libfaketime.
#   scripts/test-at.sh "2026-12-31 22:30:00" [pytest args...]
# Every process the suite starts (pytest workers, the embedded PostgreSQL, notebooks' kernels,
# Chromium) sees the wall clock moved by the same offset, so Python and SQL agree on "now". The
# monotonic clock stays real (see scripts/faketime-monotonic-sleep.c for why, and the shim that
# makes that work with libfaketime 0.9.10). Statically linked Go programs (prometheus, promtool,
# alertmanager, amtool) ignore LD_PRELOAD and run at the real date: their tests feed them explicit
# timestamps or only relative times, so they pass either way.
set -euo pipefail
cd "$(dirname "$0")/.."
instant="$1"; shift
lib=$(dpkg -L libfaketime 2>/dev/null | grep '/libfaketime.so.1$' | head -1 || true)
if [ -z "$lib" ] || [ ! -f "$lib" ]; then
    echo "Error: libfaketime is missing: run 'sudo apt-get install faketime'" >&2
    exit 1
fi
if ! command -v cc >/dev/null 2>&1; then
    echo "Error: a C compiler is needed for the faketime shim: run 'sudo apt-get install gcc'" >&2
    exit 1
fi
shim_dir=$(mktemp -d)
# readable by all: pgserver runs PostgreSQL as its own user when the suite runs as root, and the
# dynamic loader silently skips a preload entry it cannot read
chmod 755 "$shim_dir"
trap 'rm -rf "$shim_dir"' EXIT
cc -shared -fPIC -O2 -o "$shim_dir/sleepfix.so" scripts/faketime-monotonic-sleep.c -ldl
offset=$(( $(date -u -d "$instant UTC" +%s) - $(date -u +%s) ))
echo "== the suite at $instant UTC (offset ${offset}s) =="
export LD_PRELOAD="$shim_dir/sleepfix.so:$lib" FAKETIME="+${offset}s" FAKETIME_DONT_FAKE_MONOTONIC=1
date -u
.venv/bin/python -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider "$@"
