#!/bin/sh
# Debian's amqp-tools (rabbitmq-c 0.11) against a broker at HOST:PORT (default
# 127.0.0.1:5672): amqp-declare-queue (named and server-named), two amqp-publish, amqp-get
# (first message), amqp-consume -c 1 (second message), amqp-get on the empty queue (exit 2),
# amqp-delete-queue (prints 0 messages), amqp-get on the deleted queue (404). Prints one line
# per step; the output is the same for RabbitMQ 3.10 and Warren. Exit 0 when every step
# behaved.
#
#   sh interop/amqp-tools/queue.sh 127.0.0.1:5682
set -u
addr=${1:-127.0.0.1:5672}
host=${addr%:*}
port=${addr##*:}
q=interop-tools-q
fail=0

# step NAME EXPECTED-EXIT EXPECTED-OUTPUT COMMAND...: runs an amqp-* command (15 s at most)
# and compares its exit status and its stdout+stderr.
step() {
    name=$1 want_rc=$2 want_out=$3
    shift 3
    out=$(timeout 15 "$@" --server "$host" --port "$port" 2>&1)
    rc=$?
    if [ "$rc" = "$want_rc" ] && [ "$out" = "$want_out" ]; then
        echo "$name: ok"
    else
        echo "$name: FAILED (exit $rc, expected $want_rc; output '$out', expected '$want_out')"
        fail=1
    fi
}

timeout 15 amqp-delete-queue -q "$q" --server "$host" --port "$port" >/dev/null 2>&1
step "amqp-declare-queue $q" 0 "$q" amqp-declare-queue -q "$q"
gen=$(timeout 15 amqp-declare-queue -q "" --server "$host" --port "$port" 2>&1)
case $gen in
amq.gen-*) echo "amqp-declare-queue '': ok (amq.gen-...)" ;;
*) echo "amqp-declare-queue '': FAILED ('$gen')"; fail=1 ;;
esac
step "amqp-publish one" 0 "" amqp-publish -r "$q" -b one
step "amqp-publish two" 0 "" amqp-publish -r "$q" -C text/plain -H "x-n: 2" -b two
step "amqp-get" 0 "one" amqp-get -q "$q"
step "amqp-consume -c 1" 0 "two" amqp-consume -q "$q" -c 1 cat
step "amqp-get on an empty queue" 2 "" amqp-get -q "$q"
step "amqp-delete-queue" 0 "0" amqp-delete-queue -q "$q"
step "amqp-get on a deleted queue" 1 \
    "basic.get: server channel error 404, message: NOT_FOUND - no queue '$q' in vhost '/'" \
    amqp-get -q "$q"

[ $fail -eq 0 ] && echo OK
exit $fail
