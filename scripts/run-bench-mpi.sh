#!/bin/sh
# Q3a training over MPI (bench/mpi/mpi_bench.c), global batch 128 in every
# configuration, so each compares a way of spending the machine's cores:
#   1 process  x 1 thread   the unit of the scaling efficiency
#   1 process  x 2 threads  libnn's own threads (OpenMP)
#   2 processes x 1 thread  data-parallel over MPI, batch 64 each
# Rounds alternate the configurations (BENCH_ROUNDS, default 3) and each
# figure is the median over the rounds. Then:
#   scaling efficiency = img/s(2 x 1) / (2 x img/s(1 x 1))
#   MPI against threads = img/s(2 x 1) / img/s(1 x 2)
# Extra arguments (--steps K --warmup W --batch G) go to every run.
# Builds nothing (`make bench-mpi` does that first).
set -u
build=${BUILD:-build}
bin=$build/bench/mpi/mpi_bench
rounds=${BENCH_ROUNDS:-3}
[ -x "$bin" ] || { echo "run-bench-mpi: $bin not found; run make bench-mpi" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

runs=$(mktemp) || exit 1
trap 'rm -f "$runs"' EXIT INT TERM

# run LABEL NP THREADS BIND: appends "LABEL metric value" lines.
run() {
    label=$1 np=$2 threads=$3 bind=$4
    shift 4
    if out=$(OMP_NUM_THREADS=$threads mpirun -np "$np" --bind-to "$bind" \
            "$bin" --threads "$threads" "$@" 2>&1); then
        printf '%s\n' "$out" | awk -v l="$label" '$1 == "mpi" && NF == 3 {print l, $2, $3}' >>"$runs"
        printf '%s\n' "$out" | awk '$1 == "mpi" && $2 ~ /_ms|_per_s/ {printf "    %s %s\n", $2, $3}'
    else
        printf '%s\n' "$out" >&2
        echo "run-bench-mpi: $label failed" >&2
        return 1
    fi
}

status=0
i=1
while [ "$i" -le "$rounds" ]; do
    echo "round $i:"
    echo "  1 process x 1 thread";   run 1x1 1 1 core "$@" || status=1
    echo "  1 process x 2 threads";  run 1x2 1 2 none "$@" || status=1
    echo "  2 processes x 1 thread"; run 2x1 2 1 core "$@" || status=1
    i=$((i + 1))
done

echo
sort -k1,1 -k2,2 -k3,3n "$runs" | awk '
    function flush() {
        if (n) med[key1, key2] = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        n = 0
    }
    $1 != key1 || $2 != key2 { flush(); key1 = $1; key2 = $2 }
    { v[++n] = $3 }
    END {
        flush()
        printf "Q3a CNN training, global batch 128, medians:\n"
        printf "%-24s %10s %9s %15s %18s\n", "", "images/s", "step ms", "allreduce ms", "allreduce alone"
        split("1x1 1x2 2x1", cfg, " ")
        split("1 process x 1 thread|1 process x 2 threads|2 processes x 1 thread", name, "|")
        for (i = 1; i <= 3; i++) {
            c = cfg[i]
            if (!((c, "img_per_s") in med)) continue
            printf "%-24s %10.0f %9.2f %15.3f %18.3f\n", name[i], med[c, "img_per_s"],
                med[c, "step_ms"], med[c, "allreduce_ms"], med[c, "allreduce_alone_ms"]
        }
        if (("2x1", "img_per_s") in med && ("1x1", "img_per_s") in med) {
            printf "\nscaling efficiency, 2 processes: %.0f%% (img/s of 2 x 1 over twice 1 x 1)\n", \
                100 * med["2x1", "img_per_s"] / (2 * med["1x1", "img_per_s"])
            printf "allreduce share of a 2-process step: %.1f%% (%.1f%% the communication alone)\n", \
                100 * med["2x1", "allreduce_ms"] / med["2x1", "step_ms"], \
                100 * med["2x1", "allreduce_alone_ms"] / med["2x1", "step_ms"]
        }
        if (("2x1", "img_per_s") in med && ("1x2", "img_per_s") in med)
            printf "2 processes x 1 thread against 1 process x 2 threads: %.2fx\n", \
                med["2x1", "img_per_s"] / med["1x2", "img_per_s"]
    }'
exit $status
