#!/bin/sh
# The frame watch under CPython's own tests of tracing, monitoring,
# generators, coroutines and exceptions (and on 3.11, whose watch is a frame
# evaluator, the C API's tests of evaluators): each pyenv Python 3.9+ runs them
# preloaded with the self-check build (whose walks read the frames the watch
# trusts, and abort the program at one that moved), the watch on from
# start-up. Fails if a module fails only under pymem, or the run crashes.
#   check-watch-cpython.sh WATCHCHECK_LIBPYMEM
set -u
lib=$(realpath "$1")
common="test_sys_settrace test_sys_setprofile test_generators test_coroutines test_asyncgen test_exceptions
        test_contextlib test_bdb"
work=$(mktemp -d /tmp/pymem-watch.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
bad=0 ran=0
for py in "$root"/versions/3.9.*/bin/python3 "$root"/versions/3.1[0-9].*/bin/python3; do
    [ -x "$py" ] || continue
    ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    case $ver in 3.9|3.10) tests="$common" ;; 3.11) tests="$common test_capi" ;; *) tests="test_monitoring $common" ;; esac
    ran=$((ran + 1))
    (cd "$work" && PYMEM_FRAME_WATCH=1 PYMEM_OUTPUT="$work/$ver.pmem" LD_PRELOAD="$lib" \
        timeout 900 "$py" -m test -w $tests) > "$work/$ver.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        (cd "$work" && timeout 900 "$py" -m test -w $tests) > "$work/$ver.plain.log" 2>&1
        if [ $? -eq 0 ] || [ $rc -ge 124 ]; then
            echo "FAIL  check-watch-cpython: Python $ver under the self-check build (status $rc):"
            grep -m3 "self-check\|^FAIL\|^ERROR" "$work/$ver.log"
            tail -5 "$work/$ver.log"
            bad=$((bad + 1))
            continue
        fi
    fi
    echo "ok    check-watch-cpython: Python $ver, $(grep -m1 -e 'Total tests:' -e 'tests OK' "$work/$ver.log" | sed 's/Total tests: //'), no frame moved below the floor"
done
echo "check-watch-cpython: $((ran - bad)) passed, $bad failed"
[ $bad -eq 0 ]
