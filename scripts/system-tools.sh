#!/usr/bin/env bash
# The system tools the test suite runs for real (not mocked): Prometheus, Alertmanager, Chromium; and libfaketime
# with a C compiler for the runs at faked dates (scripts/test-at.sh). Installs the missing ones with apt-get
# when run as root; otherwise stops with a one-line instruction naming the Debian packages.
# Used by `make test` and .ci/run.
set -euo pipefail

# command -> Debian package
declare -A TOOLS=(
    [promtool]=prometheus
    [prometheus]=prometheus
    [prometheus-alertmanager]=prometheus-alertmanager
    [amtool]=prometheus-alertmanager
    [chromium]=chromium
    [faketime]=faketime
    [cc]=gcc
)

missing=()
for tool in "${!TOOLS[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${TOOLS[$tool]}")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages the tests need: ${packages[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    exit 0
fi
echo "Error: the tests need Debian packages ${packages[*]}: run 'sudo apt-get install ${packages[*]}'" >&2
exit 1
