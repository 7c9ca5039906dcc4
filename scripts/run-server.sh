#!/bin/sh
# Command 1 of the README: installs what is missing, builds, and runs warren-server in the
# foreground on 127.0.0.1:5672 with its RocksDB data directory under ./var. Ctrl-C stops it
# cleanly. Extra arguments go to warren-server (try --help).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh"
cd "$top"
exec "$top/_build/warren-server" --config "$top/etc/warren.conf" --bind 127.0.0.1 --port 5672 \
    --data-dir "$top/var" "$@"
