#!/bin/sh
# Runs each fuzz target (build-fuzz/fuzz_<target>) for the given seconds,
# from its seeds (tests/fuzz/corpus/<target>, read-only) and what earlier
# runs found (build-fuzz/corpus/<target>), and prints its executions and
# coverage and one closing line: "fuzz: N passed, N failed".
# OpenBLAS starts no idle threads (the targets run one thread).
# Usage: scripts/run-fuzz.sh SECONDS TARGET...
secs=$1; shift
passed=0; failed=0
for t in "$@"; do
    mkdir -p "build-fuzz/corpus/$t" "build-fuzz/crashes/$t"
    log="build-fuzz/$t.log"
    OPENBLAS_NUM_THREADS=1 "build-fuzz/fuzz_$t" -max_total_time="$secs" -timeout=20 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -dict="tests/fuzz/$t.dict" -artifact_prefix="build-fuzz/crashes/$t/" \
        "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" > "$log" 2>&1
    rc=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(printf '%s\n' "$done_line" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$done_line" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "fuzz $t: ${execs:-?} executions in ${secs}s, cov ${cov:-?}, ft ${ft:-?}"
    else
        failed=$((failed + 1))
        tail -n 60 "$log"
        echo "fuzz $t: FAILED; the input is in build-fuzz/crashes/$t/:"
        echo "  keep it in tests/fuzz/regressions/$t/ and fix the defect"
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
