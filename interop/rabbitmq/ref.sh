#!/bin/sh
# Starts or stops a reference RabbitMQ (Debian 12's rabbitmq-server, 3.10) on port 5682 with
# interop/rabbitmq/rabbitmq.conf, its files under ${REF_DIR:-/tmp/ref}. Run as root: the
# Debian wrapper runs the node as the rabbitmq user, which must own those files.
#
#   sh interop/rabbitmq/ref.sh start     # returns once port 5682 accepts connections
#   WARREN_TEST_ADDR=127.0.0.1:5682 /usr/bin/python3 tests/integration/04-bad-input.py
#   sh interop/rabbitmq/ref.sh stop
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ref=${REF_DIR:-/tmp/ref}
export RABBITMQ_NODENAME=ref@localhost RABBITMQ_NODE_PORT=5682 RABBITMQ_DIST_PORT=25682 \
    RABBITMQ_MNESIA_BASE="$ref/mnesia" RABBITMQ_LOG_BASE="$ref/log" \
    RABBITMQ_CONFIG_FILE="$ref/rabbitmq.conf" HOME="$ref"

case ${1:-} in
start)
    command -v rabbitmq-server >/dev/null || {
        echo "rabbitmq-server not found: apt-get install rabbitmq-server" >&2
        exit 1
    }
    mkdir -p "$ref/mnesia" "$ref/log"
    cp "$here/rabbitmq.conf" "$ref/rabbitmq.conf"
    chown -R rabbitmq:rabbitmq "$ref"
    (cd "$ref" && setsid rabbitmq-server >"$ref/stdout.log" 2>&1 &)
    for _ in $(seq 90); do
        if /usr/bin/python3 -c "import socket
socket.create_connection(('127.0.0.1', 5682), 1).close()" 2>/dev/null; then
            echo "reference RabbitMQ listening on 127.0.0.1:5682 (logs in $ref/log)"
            exit 0
        fi
        sleep 1
    done
    echo "reference RabbitMQ did not start; see $ref/stdout.log" >&2
    exit 1
    ;;
stop)
    rabbitmqctl -n ref@localhost stop
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
