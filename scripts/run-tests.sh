#!/bin/sh
# Command 2 of the README (and all that CI runs): installs what is missing, builds, and runs
# every test: unit tests (Check), the fuzz corpus, generated-code drift, and the integration
# tests against the real binary; then the same under ASan+UBSan, the unit tests under
# valgrind, and `make distcheck`. Any failure stops the run with a non-zero status.
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
        echo "run-tests: make check failed in $dir" >&2
        exit 1
    fi
    show_logs "$dir"
}

echo "==== build and make check"
run_check "$top/_build"

echo "==== ASan + UBSan: make check"
run_check "$top/_build-asan" --enable-sanitizers

echo "==== unit tests under valgrind"
for t in "$top"/_build/tests/unit/check_*; do
    case $t in *.log | *.trs | *.o) continue ;; esac
    [ -x "$t" ] || continue
    echo "-- $t"
    CK_FORK=no valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 "$t"
done

echo "==== make distcheck"
make -C "$top/_build" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror

echo "run-tests: all passed"
