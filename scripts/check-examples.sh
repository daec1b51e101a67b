#!/bin/sh
# Checks every example program (each file in $1, default build/examples)
# as a new user meets it:
#   - --help exits 0 and prints "Usage";
#   - an unknown option exits 2 and names it;
#   - every option that --help shows with a range ("N in [1, 100000]") is
#     given values that are not numbers, have trailing characters or are out
#     of range ('abc', '3x', '1e99'; --epochs 0, --train -5): each exits 2
#     with the option, the value and a range in the message, and does so
#     before any data is read (--data points at a directory that does not
#     exist, which would fail with exit 1);
#   - a short run in an empty directory leaves it empty, and a run with
#     --history writes that file and nothing else.
# A new example gets the --help, option and range checks as soon as it is
# built; give it a short run in short_args below.
# Prints one closing line: "examples: N passed, N failed".
set -u
dir=$(cd "${1:-build/examples}" && pwd) || exit 1 # the runs change directory
passed=0
failed=0
tmp=$(mktemp -d -t check-examples.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
nodata=$tmp/no-such-dir

pass() { passed=$((passed + 1)); }
fail() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}

# run PROGRAM ARGS...: sets rc; stdout in $tmp/out, stderr in $tmp/err.
run() {
    timeout 300 "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# Options that --help shows with a range on the line below them.
ranged_options() {
    awk '/^  --[a-z-]+ / { name = $1; next }
         name && / in [[(]/ { print name }
         { name = "" }' "$tmp/out"
}

# bad_value PROGRAM OPTION VALUE [ARGS...]: exit 2, the option, the value
# and a range in the message.
bad_value() {
    prog=$1 opt=$2 val=$3
    shift 3
    run "$prog" "$@" "$opt" "$val"
    if [ "$rc" -eq 2 ] && grep -qF -- "$opt" "$tmp/err" &&
        grep -qF -- "'$val'" "$tmp/err" && grep -q ' in [[(]' "$tmp/err"; then
        pass
    else
        fail "$(basename "$prog") $* $opt $val: exit $rc (want 2), stderr: $(cat "$tmp/err")"
    fi
}

# Brief runs on tiny data: a few training steps at most, on one thread
# (on a busy machine, waiting threads cost more than the work).
short_args() {
    t="--threads 1 --epochs 1"
    case $1 in
    cifar_cnn | cifar_augment) echo $t --train 256 --test 64 ;;
    mpi_fit) echo $t --train 256 --test 64 ;; # one process, without mpirun
    exploding) echo $t --train 256 --test 64 --depth 3 --width 16 ;;
    residual_vs_plain) echo $t --train 16 --test 16 --batch-size 16 --models resnet20 ;;
    truncated_backbone) echo $t --train 64 --test 64 ;;
    transfer_resnet50) echo $t --train 8 --test 8 --batch-size 8 ;;
    segment_unet) echo $t --train 4 --val 2 --test 2 --batch-size 2 ;;
    inception_block | local_vs_conv) echo --size 8 ;;
    inspection_line) echo $t --train 32 --seconds 1 --fps 20 --corrupt 5 ;;
    defect_classifier | stride_vs_pool) echo $t --quick 1 ;;
    *) return 1 ;;
    esac
}

# short_run PROGRAM [ARGS...]: exit 0 in an empty directory; $tmp/files
# lists what it left there.
short_run() {
    rm -rf "$tmp/cwd" && mkdir "$tmp/cwd" || exit 1
    (cd "$tmp/cwd" && timeout 300 "$@" >"$tmp/out" 2>"$tmp/err")
    rc=$?
    ls -A "$tmp/cwd" >"$tmp/files"
}

# has OPTION: --help of the program at hand showed it with a range.
has() { printf '%s\n' "$options" | grep -qx -- "$1"; }

found=0
for prog in "$dir"/*; do
    [ -f "$prog" ] && [ -x "$prog" ] || continue
    found=$((found + 1))
    name=$(basename "$prog")

    run "$prog" --help
    if [ "$rc" -eq 0 ] && grep -q '^Usage' "$tmp/out"; then pass; else
        fail "$name --help: exit $rc (want 0) or no 'Usage'"
    fi
    data=
    grep -q '^  --data ' "$tmp/out" && data="--data $nodata"
    options=$(ranged_options)

    run "$prog" --no-such-option
    if [ "$rc" -eq 2 ] && grep -qF -- "--no-such-option" "$tmp/err"; then
        pass
    else
        fail "$name --no-such-option: exit $rc (want 2), stderr: $(cat "$tmp/err")"
    fi

    [ -n "$options" ] || fail "$name --help shows no option with a range"
    for opt in $options; do
        for val in abc 3x 1e99; do
            # shellcheck disable=SC2086 # $data is two words or none
            bad_value "$prog" "$opt" "$val" $data
        done
    done
    # shellcheck disable=SC2086
    if has --epochs; then bad_value "$prog" --epochs 0 $data; fi
    # shellcheck disable=SC2086
    if has --train; then bad_value "$prog" --train -5 $data; fi

    if args=$(short_args "$name"); then
        # shellcheck disable=SC2086 # the arguments are words
        short_run "$prog" $args
        if [ "$rc" -eq 0 ] && [ ! -s "$tmp/files" ]; then pass; else
            fail "$name $args in an empty directory: exit $rc, left: $(cat "$tmp/files") $(tail -n 3 "$tmp/err")"
        fi
    else
        echo "note: $name has no short run in scripts/check-examples.sh"
    fi
done

# --history writes the file asked for, and only it.
if [ -x "$dir/cifar_cnn" ]; then
    # shellcheck disable=SC2046
    short_run "$dir/cifar_cnn" $(short_args cifar_cnn) --history h.csv
    if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/files")" = h.csv ] &&
        head -n 1 "$tmp/cwd/h.csv" | grep -q '^epoch,'; then
        pass
    else
        fail "cifar_cnn --history h.csv: exit $rc, files: $(cat "$tmp/files")"
    fi
fi
# --save writes the chosen model, with its preprocessing, and nothing else.
if [ -x "$dir/defect_classifier" ]; then
    # shellcheck disable=SC2046
    short_run "$dir/defect_classifier" $(short_args defect_classifier) --save c.nnm
    if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/files")" = c.nnm ] &&
        grep -q '^Saved .* to c.nnm' "$tmp/out"; then
        pass
    else
        fail "defect_classifier --quick 1 --save c.nnm: exit $rc, files: $(cat "$tmp/files")"
    fi
fi
# --seeds LIST: every row from each seed, then one table of mean [min, max]
# (six ranges a row) and ROC AUC per seed; a bad list, --seed beside it or
# --save with several seeds are usage errors naming the option.
if [ -x "$dir/defect_classifier" ]; then
    # shellcheck disable=SC2046
    short_run "$dir/defect_classifier" $(short_args defect_classifier) --seeds 1,2
    ranged=$(awk '/^== over 2 seeds \(1, 2\)/ { t = 1; next }
        t && /^(ReLU|LeakyReLU|PReLU) / && / [01]\.[0-9]+\/[01]\.[0-9]+$/ {
            if (gsub(/[01]\.[0-9][0-9][0-9] \[[01]\.[0-9][0-9][0-9], [01]\.[0-9][0-9][0-9]\]/, "") == 6) n++
        }
        END { print n + 0 }' "$tmp/out")
    if [ "$rc" -eq 0 ] && [ ! -s "$tmp/files" ] && [ "$ranged" -eq 10 ]; then
        pass
    else
        fail "defect_classifier --quick 1 --seeds 1,2: exit $rc, $ranged of 10 rows with ranges, left: $(cat "$tmp/files") $(tail -n 3 "$tmp/err")"
    fi
    for args in "--seeds 1,,2" "--seeds x" "--seeds 1,2," "--seed 3 --seeds 1,2" \
        "--seeds 1,2 --save c.nnm"; do
        # shellcheck disable=SC2086 # the arguments are words
        short_run "$dir/defect_classifier" --quick 1 $args
        if [ "$rc" -eq 2 ] && grep -qF -- "--seeds" "$tmp/err" &&
            [ ! -s "$tmp/files" ]; then
            pass
        else
            fail "defect_classifier $args: exit $rc (want 2), stderr: $(cat "$tmp/err")"
        fi
    done
fi
# stride_vs_pool --seeds: both networks per seed, then seven rows of two
# mean [min, max] ranges; --seed beside --seeds is a usage error.
if [ -x "$dir/stride_vs_pool" ]; then
    # shellcheck disable=SC2046
    short_run "$dir/stride_vs_pool" $(short_args stride_vs_pool) --seeds 1,2
    ranged=$(awk '/^== over 2 seeds \(1, 2\)/ { t = 1; next }
        t && gsub(/[0-9.]+ \[[0-9.]+, [0-9.]+\]/, "") == 2 { n++ }
        END { print n + 0 }' "$tmp/out")
    if [ "$rc" -eq 0 ] && [ ! -s "$tmp/files" ] && [ "$ranged" -eq 7 ]; then
        pass
    else
        fail "stride_vs_pool --quick 1 --seeds 1,2: exit $rc, $ranged of 7 rows with ranges"
    fi
    short_run "$dir/stride_vs_pool" --quick 1 --seed 3 --seeds 1,2
    if [ "$rc" -eq 2 ] && grep -qF -- "--seeds" "$tmp/err"; then pass; else
        fail "stride_vs_pool --seed 3 --seeds 1,2: exit $rc (want 2)"
    fi
fi
# The test images by defect kind: every one counted once, under one kind,
# over two chunks of test images (480 at a time); and the same test images
# whatever the seed of training.
if [ -x "$dir/segment_unet" ]; then
    kinds() { grep '^  [a-z]* *[0-9][0-9]* images' "$tmp/out" |
        sed 's/images.*/images/'; }
    short_run "$dir/segment_unet" --threads 1 --epochs 1 --train 4 --val 2 \
        --test 500 --batch-size 2 --seed 1
    rc1=$rc
    kinds >"$tmp/kinds1"
    counted=$(sed -n 's/^  [a-z]* *\([0-9][0-9]*\) images.*/\1/p' "$tmp/out" |
        awk '{ n += $1 } END { print n + 0 }')
    if [ "$rc1" -eq 0 ] && grep -q '^By defect kind' "$tmp/out" &&
        grep -q '^Test (500 held-out images)' "$tmp/out" &&
        grep -q '^  none ' "$tmp/out" && [ "$counted" -eq 500 ]; then
        pass
    else
        fail "segment_unet --test 500: exit $rc1, $counted test images by kind (want 500)"
    fi
    short_run "$dir/segment_unet" --threads 1 --epochs 1 --train 4 --val 2 \
        --test 500 --batch-size 2 --seed 2
    kinds >"$tmp/kinds2"
    if [ "$rc" -eq 0 ] && [ -s "$tmp/kinds1" ] &&
        cmp -s "$tmp/kinds1" "$tmp/kinds2"; then
        pass
    else
        fail "segment_unet --seed 1 and --seed 2: not the same test images (exit $rc)"
    fi
fi
[ "$found" -gt 0 ] || fail "no example programs in $dir"

echo "examples: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
