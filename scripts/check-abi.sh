#!/bin/sh
# The ABI changes only on purpose: the exported symbols of lib/libnn.so must
# equal tests/symbols.txt, carry the nn_ prefix and be declared in nn.h.
set -e
lib=${1:-lib/libnn.so}
actual=$(mktemp)
trap 'rm -f "$actual"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u > "$actual"
status=0
if ! diff -u tests/symbols.txt "$actual"; then
    echo "ABI check: exported symbols differ from tests/symbols.txt (update it on purpose)"
    status=1
fi
for s in $(cat "$actual"); do
    case "$s" in nn_*) ;; *) echo "ABI check: $s lacks the nn_ prefix"; status=1;; esac
    grep -q "\b$s(" include/nn.h || { echo "ABI check: $s is not declared in include/nn.h"; status=1; }
done
n=$(wc -l < "$actual")
if [ $status -eq 0 ]; then echo "abi: 1 passed, 0 failed"; echo "($n exported symbols)"; else echo "abi: 0 passed, 1 failed"; fi
exit $status
