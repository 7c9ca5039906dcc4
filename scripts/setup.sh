#!/bin/sh
# Shared set-up for scripts/run-server.sh and scripts/run-tests.sh on Debian 12 (as root):
# installs whatever build and test packages are missing, then configures and builds Warren
# out of tree in $BUILD_DIR (default _build) with any extra configure flags given.
# Usage: scripts/setup.sh [configure flags...]
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-"$top/_build"}

packages="build-essential autoconf automake libtool pkg-config
libevent-dev libssl-dev librocksdb-dev libpcre2-dev libjansson-dev check libraft-dev libuv1-dev
python3 python3-pika python3-amqp python3-kombu celery amqp-tools
clang clang-format libclang-rt-14-dev valgrind
chromium chromium-driver python3-selenium
systemd prometheus"
# chromium, chromium-driver, python3-selenium: the web dashboard's browser test
# (tests/integration/78-web-ui.py) drives Debian's headless Chromium.
# systemd: its pkg-config file says where the unit installs, and systemd-analyze verifies it
# (tests/integration/72-service-install.py); it need not be running. prometheus: its promtool
# checks the /metrics text (tests/integration/76-prometheus.py); its service is not used.

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
# The amqplib interop test needs Node.js and npm; any install of them will do (Debian's
# packages, or a nodesource one already on the machine).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: packages are missing and this is not root: run as root, or apt-get install$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi

cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
    autoreconf -fi
fi
mkdir -p "$build"
cd "$build"
want="$*"
if [ ! -f Makefile ] || [ "$(cat .configure-flags 2>/dev/null)" != "$want" ]; then
    # shellcheck disable=SC2086
    "$top/configure" $want
    echo "$want" > .configure-flags
fi
make -j"$(nproc)"
