#!/bin/sh
# Runs a selection of CPython's own regression tests (Debian's
# libpython3.11-testsuite) with /usr/bin/python3, first plain and then under
# `pymem run`, in exact mode, with --native, and with --native
# --no-python-allocators (heaptrack's scope), in the profiled
# process itself (sequentially: regrtest's -j workers would be children pymem
# does not follow). Fails if a test fails under pymem that passes without it,
# or if a profiled run crashes, hangs or ends without regrtest's result.
# Flaky tests get one re-run (-w). A test module that runs past $timeout
# seconds makes regrtest dump every thread's stack and exit: a run that hung
# is run once more, because CPython's own tests hang now and then without
# pymem (test_multiprocessing_fork blocked in a pipe read, seen in a plain
# run); a run that hangs twice fails.
set -u
pymem=${1:-build/pymem}
# test_threading runs last: on 3.11 its test_frame_tstate_tracing leaves
# threading.settrace(noop_trace) installed for the rest of the process, so
# every thread started later calls sys.settrace, which 3.11 does not make
# reentrant (gh-98257, fixed in 3.12): with regrtest's own Python audit hook
# running inside it, two threads starting at once can make one die before
# its target runs ("Cannot install a trace function while another trace
# function is being installed"), and a multiprocessing Pool then waits for
# its task handler forever. Seen once in a profiled run, whose slower
# allocations widen the window; the plain run is as exposed.
tests="test_subprocess test_signal test_os test_gc test_weakref test_tracemalloc test_json test_re test_fork1 test_multiprocessing_fork test_threading"
work=$(mktemp -d /tmp/pymem-cpython.XXXXXX)
trap 'rm -rf "$work"' EXIT
failed_tests() { sed -n '/^[0-9]* tests\{0,1\} failed/,/^$/p; /^[0-9]* tests\{0,1\} failed again/,/^$/p' "$1" | grep -o 'test_[a-z0-9_]*' | sort -u; }
total=$(echo $tests | wc -w)
timeout=600

# regrtest NAME [pymem run options]: runs the tests once, or twice if the
# first run hung, into $work/NAME.log; plainly if NAME is plain
regrtest() {
    name=$1
    shift
    for try in 1 2; do
        if [ $name = plain ]; then
            (cd "$work" && timeout 1800 /usr/bin/python3 -m test -w --timeout $timeout $tests) > "$work/$name.log" 2>&1
        else
            rm -f "$work/$name.pmem"
            (cd "$work" && timeout 1800 "$OLDPWD/$pymem" run -q "$@" -o "$work/$name.pmem" -- \
                /usr/bin/python3 -m test -w --timeout $timeout $tests) > "$work/$name.log" 2>&1
        fi
        status=$?
        grep -q "^Timeout ([0-9:]*)!" "$work/$name.log" || return $status
        [ $try -eq 2 ] && return 124
        echo "check-cpython: the $name run hung in $(grep -o '\] test_[a-z0-9_]*' "$work/$name.log" | tail -1 | cut -c3-) past ${timeout}s; its stacks:"
        sed -n '/^Timeout ([0-9:]*)!/,$p' "$work/$name.log" | head -40
        echo "check-cpython: running it again"
    done
}

echo "check-cpython: plain run"
regrtest plain
plain_rc=$?
tail -3 "$work/plain.log" | sed 's/^/  plain: /'
failed_tests "$work/plain.log" > "$work/plain.failed"
grep -q "Tests result: .*SUCCESS$" "$work/plain.log" && : > "$work/plain.failed"

bad=0
modes="exact native unhooked"
nmodes=$(echo $modes | wc -w)
for mode in $modes; do
    opts=""
    [ $mode = native ] && opts="--native"
    [ $mode = unhooked ] && opts="--native --no-python-allocators"
    echo "check-cpython: under pymem ($mode)"
    regrtest $mode $opts
    rc=$?
    tail -3 "$work/$mode.log" | sed "s/^/  $mode: /"
    if [ $rc -ge 124 ]; then
        echo "check-cpython: the profiled run ($mode) crashed or hung twice (status $rc)"
        tail -40 "$work/$mode.log"
        bad=$((bad + 1))
        continue
    fi
    if ! grep -q "Tests result: " "$work/$mode.log"; then
        # regrtest always ends with its result: a run without one lost its
        # output or died on the way (status $rc), whatever it printed
        echo "check-cpython: the profiled run ($mode) ended without regrtest's result (status $rc)"
        tail -40 "$work/$mode.log"
        bad=$((bad + 1))
        continue
    fi
    failed_tests "$work/$mode.log" > "$work/$mode.failed"
    grep -q "Tests result: .*SUCCESS$" "$work/$mode.log" && : > "$work/$mode.failed"
    new=$(comm -13 "$work/plain.failed" "$work/$mode.failed")
    "$pymem" summary "$work/$mode.pmem" | sed -n '1,9p' | sed "s/^/  capture ($mode): /"
    if [ -n "$new" ]; then
        echo "check-cpython: fail under pymem ($mode) only: $new"
        grep -B5 -A30 "FAIL\|ERROR" "$work/$mode.log" | head -80
        bad=$((bad + 1))
        continue
    fi
    echo "check-cpython: plain status $plain_rc, $mode status $rc; no test fails only under pymem"
done
if [ $bad -ne 0 ]; then
    echo "check-cpython: $((nmodes - bad)) passed, $bad failed (each mode runs the $total test modules)"
    exit 1
fi
echo "check-cpython: $nmodes passed, 0 failed (each mode runs the $total test modules)"
