#!/bin/sh
# One formatting for every C file of the tree: applies .clang-format (Debian 12's
# clang-format 14) to the sources, headers, tests, benchmarks and tools (`make format`), or
# with --check lists the files that differ from it and fails (what `make check` runs). The
# generated codec (wire_gen.*) is left to its generator, which formats it and whose drift
# test checks it; so is the dashboard's ui_assets.c, generated into the build tree (in the
# source tree too when building there). $CLANG_FORMAT names the binary (default clang-format).
# Usage: scripts/format.sh [--check] [source tree]
set -eu
check=no
if [ "${1:-}" = --check ]; then
    check=yes
    shift
fi
top=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null 2>&1; then
    echo "format: $cf not found (Debian: apt-get install clang-format)" >&2
    exit 1
fi
cd "$top"
files=$(find src include tests bench tools -name '*.[ch]' ! -name 'wire_gen.*' ! -name 'ui_assets.c' | sort)
if [ "$check" = no ]; then
    # shellcheck disable=SC2086
    "$cf" -i $files
    exit 0
fi
bad=0
for f in $files; do
    if ! "$cf" --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "format: $f differs from .clang-format (make format fixes it)" >&2
        bad=1
    fi
done
exit $bad
