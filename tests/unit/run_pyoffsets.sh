#!/bin/sh
# Builds and runs test_pyoffsets.c against the headers of every CPython 3.8+
# found on this machine (Debian's python3-dev, pyenv's versions).
set -u
out=${1:-build/tests}
mkdir -p "$out"
ran=0; failed=0
for inc in /usr/include/python3.* "$HOME"/.pyenv/versions/3.*/include/python3.* ; do
    [ -f "$inc/Python.h" ] || continue
    case "$inc" in *python3.[0-7]|*python3.[0-7]m) continue ;; esac
    v=$(echo "$inc" | sed 's/.*python//; s/[^0-9.].*//')
    tag=$(echo "$inc" | tr '/.' '__')
    if ! cc -std=c11 -D_GNU_SOURCE -I"$inc" -Iinclude -Ipreload -o "$out/pyoffsets$tag" tests/unit/test_pyoffsets.c preload/base/warn.c preload/base/thread.c preload/base/rawmem.c -ldl 2>"$out/pyoffsets$tag.log"; then
        echo "pyoffsets: cannot build against $inc (see $out/pyoffsets$tag.log)"; failed=$((failed+1)); continue
    fi
    if "$out/pyoffsets$tag"; then ran=$((ran+1)); else failed=$((failed+1)); fi
done
[ $ran -gt 0 ] || echo "pyoffsets: no CPython headers found; skipped"
[ $failed -eq 0 ]
