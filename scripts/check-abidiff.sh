#!/bin/sh
# The ABI of this build against the released 0.1.0, beside check-abi.sh's
# symbol list:
#  - abidiff (abigail-tools) compares the library's DWARF with
#    tests/abi/libnn-0.1.0.abi (abidw of the 0.1.0 release, commit 077d5f8,
#    built with -g), public types only (those of include/nn.h). Added
#    functions pass; a removed function or variable, or any change to an
#    existing one or to a type it reaches, fails unless reviewed and
#    listed in tests/abi/allowed.suppr.
#  - A program compiled against the 0.1.0 header (tests/abi/nn-0.1.0.h,
#    tests/abi/old_program.c) runs against this library.
# The baseline was made with:
#   git worktree add /tmp/nn-0.1.0 077d5f8 && make -C /tmp/nn-0.1.0 lib
#   abidw --headers-dir /tmp/nn-0.1.0/include --drop-private-types \
#         --no-corpus-path --out-file tests/abi/libnn-0.1.0.abi \
#         /tmp/nn-0.1.0/lib/libnn.so.0.1.0
# Usage: scripts/check-abidiff.sh [path/to/libnn.so]
lib=${1:-lib/libnn.so}
passed=0; failed=0
out=$(abidiff --headers-dir2 include --drop-private-types \
      --suppressions tests/abi/allowed.suppr tests/abi/libnn-0.1.0.abi "$lib" 2>&1)
rc=$?
# abidiff's status bits: 1 error, 2 usage, 4 ABI change, 8 incompatible.
if [ $((rc & 11)) -eq 0 ] &&
   printf '%s\n' "$out" | grep -q '^Functions changes summary: 0 Removed, 0 Changed' &&
   printf '%s\n' "$out" | grep -q '^Variables changes summary: 0 Removed, 0 Changed'; then
    passed=$((passed + 1))
    added=$(printf '%s\n' "$out" | sed -n 's/^Functions changes summary:.* \([0-9]*\) Added.*/\1/p')
    echo "abidiff against 0.1.0: compatible (${added:-0} functions added)"
else
    failed=$((failed + 1))
    printf '%s\n' "$out"
    echo "abidiff against 0.1.0: incompatible change (status $rc)"
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
libdir=$(cd "$(dirname "$lib")" && pwd)
if cc -std=c11 -Wall -Wextra -Werror -Itests/abi tests/abi/old_program.c \
      -o "$dir/old_program" -L"$libdir" -lnn -Wl,-rpath,"$libdir" -lm &&
   "$dir/old_program"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "a program built against the 0.1.0 header fails with this library"
fi
echo "abi-compat: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
