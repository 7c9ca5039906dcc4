#!/bin/sh
# Command 2 of the README (and all that CI runs): installs what is missing, builds, and runs
# every test: unit tests (Check), the fuzz corpus, generated-code drift, and the integration
# tests against the real binary; then the same under ASan+UBSan, the unit tests under
# valgrind, and `make distcheck` (with two of the integration tests). Any failure stops the
# run with a non-zero status.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)

show_logs() {
    # Check's summaries land only in the per-test logs: print them so the run shows what ran.
    for f in "$1"/tests/unit/*.log "$1"/tests/fuzz/*.log "$1"/tests/*.log "$1"/tests/integration/*.log; do
        [ -f "$f" ] || continue
        echo "---- $f"
        cat "$f"
    done
}

run_check() {
    dir=$1
    shift
    BUILD_DIR=$dir "$top/scripts/setup.sh" --enable-werror "$@"
    if ! make -C "$dir" -j"$(nproc)" check; then
        show_logs "$dir"
        # Last, where a cut-short view of the run still shows them: the failed tests' logs.
        echo "==== failed tests ($dir/test-suite.log)"
        cat "$dir/test-suite.log"
        echo "run-tests: make check failed in $dir" >&2
        exit 1
    fi
    show_logs "$dir"
}

echo "==== build and make check ($(date +%T))"
run_check "$top/_build"

echo "==== ASan + UBSan: make check ($(date +%T))"
# Unit tests run unforked here: a forked test's exit runs LeakSanitizer over the whole
# process, which made the ASan unit tests take minutes (the plain build runs them forked).
export CK_FORK=no
run_check "$top/_build-asan" --enable-sanitizers
unset CK_FORK

echo "==== unit tests under valgrind ($(date +%T))"
# One valgrind per core; each test's output is printed whole once it is done.
for t in "$top"/_build/tests/unit/check_*; do
    case $t in *.log | *.trs | *.o) continue ;; esac
    [ -x "$t" ] && echo "$t"
done | xargs -P "$(nproc)" -I{} sh -c '
    out=$(CK_FORK=no valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
        --error-exitcode=1 "$1" 2>&1) && rc=0 || rc=$?
    printf -- "-- %s (exit %s)\n%s\n" "$1" "$rc" "$out"
    exit "$rc"' valgrind-unit {}

echo "==== make distcheck ($(date +%T))"
# The tarball builds and its tests run: the unit tests, the fuzz replays and two integration
# tests, one node and a cluster (the integration tests all ran twice above, from the same
# sources).
if ! make -C "$top/_build" -j"$(nproc)" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror \
    INTEGRATION_TESTS_RUN="tests/integration/01-connection-pika-channels.py \
        tests/integration/94-cluster-catch-up.py"; then
    # A failed distcheck leaves its build tree behind: its failed tests' logs.
    for log in "$top"/_build/warren-*/_build/sub/test-suite.log; do
        [ -f "$log" ] && echo "==== failed tests ($log)" && cat "$log"
    done
    echo "run-tests: make distcheck failed" >&2
    exit 1
fi

echo "run-tests: all passed ($(date +%T))"
