#!/bin/sh
# libnn_mpi's tests, several processes on this machine under mpirun, each
# run bounded by a timeout (a hang fails rather than blocks `make check`):
#   1. tests/mpi/test_mpi with 2 and 3 processes (oversubscribed on a small
#      machine): broadcast, bit-identical weights, equivalence with one
#      process at the global batch size, the BatchNorm rule, processes that
#      disagree, rank-0-only files, argument errors;
#   2. examples/mpi_fit with 2 processes on a tiny CIFAR-10-format data
#      set: it trains and rank 0 alone writes cifar_cnn's history format;
#   3. the same with rank 1's data file damaged: every process must stop,
#      with the loader's message, well before the timeout;
#   4. mpi_fit --model resnet-transfer and --model unet with 2 processes, a
#      few steps each: they train, every process ends with bit-identical
#      weights and statistics (mpi_fit compares their hashes and fails
#      otherwise), and rank 0 writes the history format of the
#      single-process example (transfer_resnet50's, segment_unet's).
# One process per core is the norm; here each process gets one thread.
# Prints one closing line: "mpi: N passed, N failed".
build=${BUILD:-build}
limit=${MPI_TEST_TIMEOUT:-120}
export OMP_NUM_THREADS=1
# Open MPI refuses to run as root unless told (CI runs as root).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Waiting processes yield their core: 3 processes share 2 cores here.
mpirun="mpirun --oversubscribe --mca mpi_yield_when_idle 1"

passed=0; failed=0
pass() { passed=$((passed + 1)); echo "mpi: ok: $1"; }
fail() { failed=$((failed + 1)); echo "mpi: FAILED: $1"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. the library's tests
for np in 2 3; do
    if timeout "$limit" $mpirun -np $np "$build/tests/mpi/test_mpi" >"$tmp/out" 2>&1; then
        pass "test_mpi with $np processes ($(tail -n 1 "$tmp/out"))"
    else
        cat "$tmp/out"
        fail "test_mpi with $np processes (status $?)"
    fi
done

# A CIFAR-10-format data set of 64 training and 64 test images, and a copy
# whose third training file is cut short.
/usr/bin/python3 - "$tmp" <<'PY'
import os, random, sys
random.seed(1)
def write(path, n):
    with open(path, "wb") as f:
        for _ in range(n):
            f.write(bytes([random.randrange(10)]) + os.urandom(3072))
for d in ("good", "bad"):
    os.makedirs(os.path.join(sys.argv[1], d))
    for i in range(1, 6):
        write(os.path.join(sys.argv[1], d, f"data_batch_{i}.bin"), 13)
    write(os.path.join(sys.argv[1], d, "test_batch.bin"), 64)
with open(os.path.join(sys.argv[1], "bad", "data_batch_3.bin"), "r+b") as f:
    f.truncate(3073 * 5 + 100)
PY

# 2. a data-parallel run of the example
args="--epochs 1 --batch-size 16 --threads 1"
if timeout "$limit" $mpirun -np 2 "$build/examples/mpi_fit" --data "$tmp/good" $args \
        --history "$tmp/h.csv" >"$tmp/out" 2>&1 &&
    [ "$(head -n 1 "$tmp/h.csv")" = "epoch,loss,accuracy,val_loss,val_accuracy,seconds" ] &&
    [ "$(wc -l < "$tmp/h.csv")" -eq 2 ] &&
    [ "$(grep -c '^Test loss' "$tmp/out")" -eq 1 ] &&
    grep -q '^Weights and statistics: bit-identical on all 2 processes' "$tmp/out"; then
    pass "mpi_fit with 2 processes: identical weights, one history, cifar_cnn's columns"
else
    cat "$tmp/out"
    fail "mpi_fit with 2 processes"
fi

# 3. rank 1's data file is bad: every process stops, none waits.
start=$(date +%s)
timeout "$limit" $mpirun -np 1 "$build/examples/mpi_fit" --data "$tmp/good" $args : \
    -np 1 "$build/examples/mpi_fit" --data "$tmp/bad" $args >"$tmp/out" 2>&1
status=$?
took=$(( $(date +%s) - start ))
if [ $status -ne 0 ] && [ $status -ne 124 ] &&
    grep -q "data_batch_3.bin" "$tmp/out" &&
    grep -q "mpi_fit: rank 1 stops; aborting every process" "$tmp/out"; then
    pass "a bad data file on rank 1 stops both processes in ${took}s (status $status)"
else
    cat "$tmp/out"
    fail "a bad data file on rank 1 (status $status after ${took}s; 124 is the timeout)"
fi

# 4. the other models, a few steps on tiny data. The ResNet50 runs at
# 224x224 inside the model whatever the input, so 8 images, one step.
identical='^Weights and statistics: bit-identical on all 2 processes'
if timeout "$limit" $mpirun -np 2 "$build/examples/mpi_fit" --model resnet-transfer \
        --data "$tmp/good" --train 8 --test 8 --batch-size 4 --epochs 1 --threads 1 \
        --history "$tmp/r.csv" >"$tmp/out" 2>&1 &&
    grep -q "$identical" "$tmp/out" &&
    grep -q '^Gradient averaging: 1 steps' "$tmp/out" &&
    [ "$(head -n 1 "$tmp/r.csv")" = "epoch,loss,accuracy,val_loss,val_accuracy,seconds" ] &&
    [ "$(wc -l < "$tmp/r.csv")" -eq 2 ]; then
    pass "mpi_fit --model resnet-transfer with 2 processes: identical weights, transfer_resnet50's history"
else
    cat "$tmp/out"
    fail "mpi_fit --model resnet-transfer with 2 processes"
fi

# The U-Net: 2 epochs of 8 new synthetic images, 2 per process per step;
# the history must have segment_unet's columns and one row per epoch.
unet="--train 8 --val 4 --test 4 --epochs 2 --threads 1"
if timeout "$limit" "$build/examples/segment_unet" $unet --batch-size 4 \
        --history "$tmp/u1.csv" >"$tmp/out1" 2>&1 &&
    timeout "$limit" $mpirun -np 2 "$build/examples/mpi_fit" --model unet $unet \
        --batch-size 2 --history "$tmp/u2.csv" >"$tmp/out" 2>&1 &&
    grep -q "$identical" "$tmp/out" &&
    grep -q '^Gradient averaging: 4 steps' "$tmp/out" &&
    [ "$(grep -c '^Test (4 held-out images)' "$tmp/out")" -eq 1 ] &&
    [ "$(head -n 1 "$tmp/u2.csv")" = "$(head -n 1 "$tmp/u1.csv")" ] &&
    [ "$(wc -l < "$tmp/u2.csv")" -eq 3 ]; then
    pass "mpi_fit --model unet with 2 processes: identical weights, segment_unet's history"
else
    cat "$tmp/out1" "$tmp/out"
    fail "mpi_fit --model unet with 2 processes"
fi

echo "mpi: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
