#!/bin/sh
# Runs a cluster of Warren nodes on this machine, to try clustering and failover.
#   scripts/local-cluster.sh start N DIR [BASE_PORT]
#   scripts/local-cluster.sh stop DIR
# start: N nodes (1..16) of the built warren-server, or of $WARREN_SERVER when set, named
# warren1@localhost ... warrenN@localhost, on 127.0.0.1 only. Node I listens for AMQP on
# BASE_PORT+I-1 (BASE_PORT: 5672), for the HTTP API on BASE_PORT+10000+I-1 and for the other
# nodes on BASE_PORT+20000+I-1; its configuration, data and log are under DIR/nodeI and its
# pid is in DIR/nodeI.pid. All share one fresh secret (DIR/nodeI/data/.erlang.cookie).
# With WARREN_CLUSTER_TLS=1 the nodes talk to each other over TLS: a CA and a certificate for
# the nodes are made under DIR/tls (openssl) and named in distribution.ssl_options.*.
# Returns once the nodes form one cluster, or fails after a minute showing their logs.
# stop: SIGTERM to every node of DIR, waiting for each to exit.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
server=${WARREN_SERVER:-"$top/_build/warren-server"}
ctl=$(dirname "$server")/warrenctl
[ -x "$ctl" ] || ctl="$top/_build/warrenctl"

usage() {
    echo "usage: $0 start N DIR [BASE_PORT] | stop DIR" >&2
    exit 64
}

# cluster_formed DIR N: every node sees all N nodes running.
cluster_formed() {
    for i in $(seq 1 "$2"); do
        out=$("$ctl" --config "$1/node$i/warren.conf" cluster_status --formatter json \
            2>/dev/null) || return 1
        running=$(printf '%s' "$out" | /usr/bin/python3 -c \
            'import json,sys; print(len(json.load(sys.stdin)["running_nodes"]))') || return 1
        [ "$running" -eq "$2" ] || return 1
    done
}

# tls_files DIR: a CA (DIR/tls/ca.pem) and a certificate it issued for the nodes
# (DIR/tls/node.pem, node.key), made once.
tls_files() {
    t="$1/tls"
    [ -f "$t/node.pem" ] && return 0
    mkdir -p "$t"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj "/CN=Warren local cluster CA" -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout "$t/node.key" -out "$t/node.csr" 2>/dev/null
    openssl x509 -req -in "$t/node.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
        -days 30 -out "$t/node.pem" 2>/dev/null
}

start() {
    n=$1 dir=$2 base=${3:-5672}
    case $n in '' | *[!0-9]*) usage ;; esac
    [ "$n" -ge 1 ] && [ "$n" -le 16 ] || usage
    [ -x "$server" ] || { echo "$0: no $server: build first (scripts/setup.sh)" >&2; exit 1; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    cookie=$(od -An -N15 -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f0-9' 'A-P')
    nodes=""
    for i in $(seq 1 "$n"); do
        nodes="${nodes}cluster_formation.classic_config.nodes.$i = warren$i@localhost:$((base + 20000 + i - 1))
"
    done
    if [ "${WARREN_CLUSTER_TLS:-0}" = 1 ]; then
        tls_files "$dir"
        nodes="${nodes}distribution.ssl_options.certfile = $dir/tls/node.pem
distribution.ssl_options.keyfile = $dir/tls/node.key
distribution.ssl_options.cacertfile = $dir/tls/ca.pem
"
    fi
    for i in $(seq 1 "$n"); do
        d="$dir/node$i"
        mkdir -p "$d/data"
        if [ -f "$dir/node$i.pid" ] && kill -0 "$(cat "$dir/node$i.pid")" 2>/dev/null; then
            echo "$0: node $i of $dir runs already (pid $(cat "$dir/node$i.pid"))" >&2
            exit 1
        fi
        if [ ! -f "$d/data/.erlang.cookie" ]; then
            printf '%s' "$cookie" > "$d/data/.erlang.cookie"
            chmod 400 "$d/data/.erlang.cookie"
        fi
        cat > "$d/warren.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$((base + i - 1))
management.tcp.ip = 127.0.0.1
management.tcp.port = $((base + 10000 + i - 1))
prometheus.tcp.port = 0
data_dir = $d/data
log.dir = $d
log.file = warren.log
log.console = false
distribution.listener.interface = 127.0.0.1
distribution.listener.port_range.min = $((base + 20000 + i - 1))
cluster_formation.peer_discovery_backend = classic_config
$nodes
CONF
        nohup "$server" --config "$d/warren.conf" --nodename "warren$i@localhost" \
            >"$d/stdout.log" 2>&1 &
        echo $! > "$dir/node$i.pid"
    done
    tries=0
    until cluster_formed "$dir" "$n"; do
        tries=$((tries + 1))
        if [ $tries -ge 120 ]; then
            echo "$0: the nodes did not form a cluster within a minute:" >&2
            for i in $(seq 1 "$n"); do tail -n 20 "$dir/node$i/warren.log" "$dir/node$i/stdout.log" >&2 || :; done
            exit 1
        fi
        sleep 0.5
    done
    echo "$n nodes running: AMQP on 127.0.0.1:$base..$((base + n - 1)), HTTP API on" \
        "127.0.0.1:$((base + 10000))..$((base + 10000 + n - 1)); stop with: $0 stop $dir"
}

# running PID: the process is there and has not exited (a zombie has: its parent, which may
# be another program, has yet to collect it).
running() {
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ "$state" != Z ]
}

stop() {
    dir=$1
    for f in "$dir"/node*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        if kill -TERM "$pid" 2>/dev/null; then
            tries=0
            while running "$pid" && [ $tries -lt 300 ]; do
                sleep 0.1
                tries=$((tries + 1))
            done
        fi
        rm -f "$f"
    done
}

case ${1:-} in
start) [ $# -ge 3 ] && [ $# -le 4 ] || usage; shift; start "$@" ;;
stop) [ $# -eq 2 ] || usage; stop "$2" ;;
*) usage ;;
esac
