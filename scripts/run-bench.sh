#!/bin/sh
# Runs the CNN benchmark for libnn and, when PyTorch is installed, for its
# PyTorch twin, then prints them side by side; then, the same way, the
# model benchmarks that are built (below). Builds nothing (`make bench`
# does that first).
#
# The machine may be shared and noisy, so the two sides run alternately,
# libnn first, BENCH_ROUNDS times (default 3), and each figure is the median
# over the rounds of the per-run medians. Each run is its own process, so
# each side's peak memory is its own.
#
# Environment:
#   BENCH_BIN     libnn benchmark (default: ${BUILD:-build}/bench/cnn_bench)
#   BENCH_TORCH   PyTorch twin (default: bench/cnn_bench_torch.py)
#   PYTHON        interpreter with torch (default: /usr/bin/python3)
#   BENCH_ROUNDS  alternating rounds (default: 3)
#   BENCH_THREADS threads for both sides (default: 2)
# Extra arguments (--reps R --steps K --warmup W --mode M) go to both sides.
set -u

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BENCH_BIN:-${BUILD:-build}/bench/cnn_bench}
twin=${BENCH_TORCH:-$here/bench/cnn_bench_torch.py}
python=${PYTHON:-/usr/bin/python3}
rounds=${BENCH_ROUNDS:-3}
threads=${BENCH_THREADS:-2}

if [ ! -x "$bin" ]; then
    echo "run-bench: $bin not found; build it with 'make bench'" >&2
    exit 1
fi
have_torch=0
if "$python" -c 'import torch' >/dev/null 2>&1; then have_torch=1; fi

runs=$(mktemp) || exit 1
trap 'rm -f "$runs"' EXIT INT TERM

# One run of one side: its "<side> <metric> <value>" lines go to $runs.
run_side() {
    label=$1
    shift
    if out=$("$@" --threads "$threads"); then
        printf '%s\n' "$out" | awk 'NF == 3' >>"$runs"
        printf '%s\n' "$out" | sed 's/^/  /'
    else
        echo "run-bench: $label run failed: $*" >&2
        return 1
    fi
}

echo "${BENCH_TITLE:-CNN benchmark (Q3a model, batch 128)}, $threads threads, $rounds rounds"
status=0
i=1
while [ "$i" -le "$rounds" ]; do
    echo "round $i:"
    run_side libnn "$bin" "$@" || status=1
    if [ "$have_torch" = 1 ]; then
        run_side torch "$python" "$twin" "$@" || status=1
    fi
    i=$((i + 1))
done

# Median over the rounds of each (side, metric): "side metric value".
medians=$(sort -k1,1 -k2,2 -k3,3n "$runs" | awk '
    function flush() {
        if (n % 2) printf "%s %s %s\n", key1, key2, v[(n + 1) / 2]
        else if (n) printf "%s %s %.1f\n", key1, key2, (v[n / 2] + v[n / 2 + 1]) / 2
        n = 0
    }
    $1 != key1 || $2 != key2 { flush(); key1 = $1; key2 = $2 }
    { v[++n] = $3 }
    END { flush() }')

echo
echo "median over rounds:"
printf '%s\n' "$medians"
echo
printf '%s\n' "$medians" | awk -v torch="$have_torch" \
    -v metrics="${BENCH_METRICS:-train_img_per_s train_aug_img_per_s train_diag_img_per_s infer_img_per_s peak_rss_mb base_rss_mb}" '
    BEGIN {
        m = split(metrics, order, " ")
        for (i = 1; i <= m; i++) seen[order[i]] = 1
    }
    { val[$1, $2] = $3; if (!seen[$2]++) order[++m] = $2 }
    END {
        if (!torch) {
            printf "%-18s %12s\n", "metric", "libnn"
            for (i = 1; i <= m; i++) {
                k = order[i]
                if ((("libnn", k) in val)) printf "%-18s %12s\n", k, val["libnn", k]
            }
            print "\nPyTorch is not installed (python3 -c \"import torch\" failed): libnn only."
            exit
        }
        printf "%-18s %12s %12s %10s\n", "metric", "libnn", "PyTorch", "ratio"
        for (i = 1; i <= m; i++) {
            k = order[i]
            a = (("libnn", k) in val) ? val["libnn", k] : "-"
            b = (("torch", k) in val) ? val["torch", k] : "-"
            r = "-"
            if (k ~ /_per_s$/ && a != "-" && b != "-" && b + 0 > 0)
                r = sprintf("%.2fx", a / b)
            if (k ~ /_ms(_t[0-9]+)?$/ && a != "-" && b != "-" && a + 0 > 0)
                r = sprintf("%.2fx", b / a)
            printf "%-18s %12s %12s %10s\n", k, a, b, r
        }
        if ((("libnn", "train_aug_img_per_s") in val) && val["libnn", "train_aug_img_per_s"] > 0)
            printf "augmentation cost: training with RandomFlip + RandomRotation is %.1f%% slower\n", \
                100 * (val["libnn", "train_img_per_s"] / val["libnn", "train_aug_img_per_s"] - 1)
        if ((("libnn", "train_diag_img_per_s") in val) && val["libnn", "train_diag_img_per_s"] > 0)
            printf "diagnostics cost: training with per-step gradient norms is %.1f%% slower\n", \
                100 * (val["libnn", "train_img_per_s"] / val["libnn", "train_diag_img_per_s"] - 1)
        print "\nratio = libnn / PyTorch throughput, PyTorch / libnn time (above 1: libnn is faster)."
        print "Memory: peak_rss_mb is each process'"'"'s peak resident set;"
        print "base_rss_mb is the peak before the model exists (runtime share)."
    }'
# Then, when no other benchmark was chosen, each model benchmark that is
# built, with its default flags (the extra arguments are the CNN's):
# ResNet50 and MobileNetV2 inference, the U-Net's training and inference,
# the defect classifier's latency.
# One benchmark: run_model <program> <twin> <title> <metrics>.
run_model() {
    [ -x "${BUILD:-build}/bench/$1" ] || return 0
    echo
    BENCH_BIN=${BUILD:-build}/bench/$1 BENCH_TORCH=$here/bench/$2 \
        BENCH_TITLE=$3 BENCH_METRICS=$4 sh "$0" || status=1
}
if [ -z "${BENCH_BIN:-}" ]; then
    latency="b1_ms b1_img_per_s b8_ms b8_img_per_s peak_rss_mb base_rss_mb"
    run_model resnet50_bench resnet50_bench_torch.py \
        "ResNet50 inference (torchvision flavour, 224x224x3, eval)" "$latency"
    run_model mobilenet_v2_bench mobilenet_v2_bench_torch.py \
        "MobileNetV2 inference (1.0, torchvision flavour, 224x224x3, eval)" \
        "$latency"
    run_model unet_bench unet_bench_torch.py \
        "U-Net (tutorial's: MobileNetV2 1.0 keras encoder frozen, 128x128x3, 512/256/128/64, 3 classes), batch 16" \
        "train_ms train_img_per_s infer_ms infer_img_per_s peak_rss_mb base_rss_mb"
    # The Q4 defect classifier at batch 1 on 8-bit frames through the
    # product path: latency at 1 and at BENCH_THREADS threads.
    latency="p50_ms_t1 p99_ms_t1"
    allocs=allocs_per_call_t1
    if [ "$threads" != 1 ]; then
        latency="$latency p50_ms_t$threads p99_ms_t$threads"
        allocs="$allocs allocs_per_call_t$threads"
    fi
    run_model classifier_bench classifier_bench_torch.py \
        "Defect classifier (Q4, 128x128x3 uint8 frames, batch 1, nn_context_classify_u8)" \
        "$latency $allocs peak_rss_mb base_rss_mb"
fi
exit $status
