#!/bin/sh
# The ABI changes only on purpose: the exported symbols of a library must
# equal its symbol list, carry its prefix and be declared in its header.
# Usage: check-abi.sh [LIB [SYMBOLS [HEADER [PREFIX]]]]
#   libnn (default):  lib/libnn.so tests/symbols.txt include/nn.h nn_
#   libnn_mpi:        lib/libnn_mpi.so tests/symbols_mpi.txt include/nn_mpi.h nn_mpi_
set -e
lib=${1:-lib/libnn.so}
symbols=${2:-tests/symbols.txt}
header=${3:-include/nn.h}
prefix=${4:-nn_}
name=$(basename "$lib" .so)
actual=$(mktemp)
trap 'rm -f "$actual"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u > "$actual"
status=0
if ! diff -u "$symbols" "$actual"; then
    echo "ABI check: exported symbols of $name differ from $symbols (update it on purpose)"
    status=1
fi
for s in $(cat "$actual"); do
    case "$s" in "$prefix"*) ;; *) echo "ABI check: $s lacks the $prefix prefix"; status=1;; esac
    grep -q "\b$s(" "$header" || { echo "ABI check: $s is not declared in $header"; status=1; }
done
n=$(wc -l < "$actual")
label=abi
[ "$name" = libnn ] || label="abi ($name)"
if [ $status -eq 0 ]; then echo "$label: 1 passed, 0 failed"; echo "($n exported symbols)"; else echo "$label: 0 passed, 1 failed"; fi
exit $status
