#!/bin/sh
# Runs each cmocka test program in its own process with a time limit and
# prints one closing line: "N passed, N failed".
passed=0; failed=0; failures=""
for t in "$@"; do
    out=$(timeout 600 "$t" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -E '^\[  (PASSED|FAILED)|^\[  ERROR|^\[  FAILED' | sed "s|^|$(basename "$t"): |"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    passed=$((passed + p)); failed=$((failed + f))
    if [ $rc -ne 0 ]; then
        [ "$f" -eq 0 ] && failed=$((failed + 1))
        failures="$failures $(basename "$t")"
        printf '%s\n' "$out" | tail -n 40
    fi
done
echo "cmocka: $passed passed, $failed failed"
[ -n "$failures" ] && echo "failing programs:$failures"
[ "$failed" -eq 0 ] && [ -z "$failures" ]
