#!/bin/sh
# Runs a selection of CPython's own regression tests (Debian's
# libpython3.11-testsuite) with /usr/bin/python3, first plain and then under
# `pymem run`, in the profiled process itself (sequentially: regrtest's -j
# workers would be children pymem does not follow). Fails if a test fails
# under pymem that passes without it, or if the profiled run crashes or hangs.
# Flaky tests get one re-run (-w) in both runs.
set -u
pymem=${1:-build/pymem}
tests="test_threading test_subprocess test_signal test_os test_gc test_weakref test_tracemalloc test_json test_re test_fork1 test_multiprocessing_fork"
work=$(mktemp -d /tmp/pymem-cpython.XXXXXX)
trap 'rm -rf "$work"' EXIT
failed_tests() { sed -n '/^[0-9]* tests\{0,1\} failed/,/^$/p; /^[0-9]* tests\{0,1\} failed again/,/^$/p' "$1" | grep -o 'test_[a-z0-9_]*' | sort -u; }

echo "check-cpython: plain run"
(cd "$work" && timeout 1500 /usr/bin/python3 -m test -w $tests) > "$work/plain.log" 2>&1
plain_rc=$?
echo "check-cpython: under pymem"
(cd "$work" && timeout 1500 "$OLDPWD/$pymem" run -q -o "$work/cpython.pmem" -- /usr/bin/python3 -m test -w $tests) > "$work/pymem.log" 2>&1
pymem_rc=$?
tail -5 "$work/plain.log" | sed 's/^/  plain: /'
tail -5 "$work/pymem.log" | sed 's/^/  pymem: /'
if [ $pymem_rc -ge 124 ]; then
    echo "check-cpython: the profiled run crashed or timed out (status $pymem_rc)"
    tail -40 "$work/pymem.log"
    echo "check-cpython: 0 passed, 1 failed"
    exit 1
fi
failed_tests "$work/plain.log" > "$work/plain.failed"
failed_tests "$work/pymem.log" > "$work/pymem.failed"
# A test fails only if it failed again after its re-run.
grep -q "Tests result: .*SUCCESS$" "$work/pymem.log" && : > "$work/pymem.failed"
grep -q "Tests result: .*SUCCESS$" "$work/plain.log" && : > "$work/plain.failed"
new=$(comm -13 "$work/plain.failed" "$work/pymem.failed")
"$pymem" summary "$work/cpython.pmem" | sed -n '1,8p' | sed 's/^/  capture: /'
total=$(echo $tests | wc -w)
if [ -n "$new" ]; then
    echo "check-cpython: fail under pymem only: $new"
    grep -B5 -A30 "FAIL\|ERROR" "$work/pymem.log" | head -80
    echo "check-cpython: $((total - $(echo "$new" | wc -w))) passed, $(echo "$new" | wc -w) failed"
    exit 1
fi
echo "check-cpython: plain status $plain_rc, pymem status $pymem_rc; no test fails only under pymem"
echo "check-cpython: $total passed, 0 failed"
