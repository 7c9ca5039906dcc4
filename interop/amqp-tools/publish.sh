#!/bin/sh
# Debian's amqp-tools (rabbitmq-c) against a broker at HOST:PORT (default 127.0.0.1:5672):
# publish to the default exchange (must succeed), then with a wrong password (must fail with
# "server connection error 403"). Prints one line per step; the output is the same for
# RabbitMQ 3.10 and Warren. Exit 0 when every step behaved.
#
#   sh interop/amqp-tools/publish.sh 127.0.0.1:5682
set -u
addr=${1:-127.0.0.1:5672}
host=${addr%:*}
port=${addr##*:}
fail=0

if timeout 15 amqp-publish --server "$host" --port "$port" -e "" -r interop-nowhere \
    -C text/plain -b "hello from amqp-publish"; then
    echo "amqp-publish to the default exchange: ok"
else
    echo "amqp-publish to the default exchange: FAILED (exit $?)"
    fail=1
fi

err=$(timeout 15 amqp-publish --server "$host" --port "$port" --password wrong -r x -b hi 2>&1)
rc=$?
case "$rc:$err" in
0:*) echo "wrong password: ACCEPTED"; fail=1 ;;
*"server connection error 403, message: ACCESS_REFUSED"*)
    echo "wrong password: refused with server connection error 403" ;;
*) echo "wrong password: exit $rc, unexpected message: $err"; fail=1 ;;
esac

[ $fail -eq 0 ] && echo OK
exit $fail
