#!/bin/sh
# Golden analyzer tests: each line of tests/golden/cases is `NAME: ARGS`, the
# arguments of one pymem command over a checked-in capture; its output must
# equal tests/golden/expected/NAME.out byte for byte. `run.sh PYMEM --update`
# rewrites the expected files (after a deliberate change of the reports);
# `run.sh PYMEM '' NAME` runs one case.
set -u
pymem=${1:-build/pymem}
update=${2:-}
only=${3:-}
dir=tests/golden
pass=0; fail=0
while IFS= read -r line; do
    [ -z "$line" ] && continue
    n=${line%%: *}
    args=${line#*: }
    [ -n "$only" ] && [ "$n" != "$only" ] && continue
    # shellcheck disable=SC2086
    out=$($pymem $args 2>&1; echo "exit $?")
    if [ "$update" = "--update" ]; then
        printf '%s\n' "$out" > "$dir/expected/$n.out"
    fi
    if [ "$out" = "$(cat "$dir/expected/$n.out")" ]; then
        pass=$((pass+1))
    else
        fail=$((fail+1))
        echo "golden: pymem $args: output differs from $dir/expected/$n.out:"
        printf '%s\n' "$out" | diff "$dir/expected/$n.out" - | head -20
    fi
done < "$dir/cases"
echo "golden: $pass passed, $fail failed"
[ $fail -eq 0 ]
