#!/bin/sh
# Installs into a temporary prefix and builds a program outside the tree
# with pkg-config, as a user would: once with LD_LIBRARY_PATH, once with
# the command that `make install` prints (rpath, no environment).
set -e
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
hint=$(make -s install PREFIX="$prefix" | sed -n 's/^  \(cc prog.c .*\)$/\1/p')
cat > "$prefix/prog.c" <<'C'
#include <nn.h>
#include <stdio.h>
int main(void)
{
    nn_model *m = nn_model_create(1);
    int shape[1] = {4};
    nn_layer *x = nn_input(m, 1, shape, NULL);
    x = nn_dense(m, x, 3, NULL);
    printf("%s %lld\n", nn_version(), (long long)nn_model_num_params(m));
    nn_model_free(m);
    return x ? 0 : 1;
}
C
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" \
    cc "$prefix/prog.c" -o "$prefix/prog" $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs nn)
out=$(LD_LIBRARY_PATH="$prefix/lib" "$prefix/prog")
version=$(sed -n 's/^#define NN_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' include/nn.h | paste -sd.)
[ -L "$prefix/lib/libnn.so.0" ] && [ -L "$prefix/lib/libnn.so" ] && [ -f "$prefix/lib/libnn.a" ]
# The printed hint, run as printed in the prefix, then the program alone.
(cd "$prefix" && eval "${hint:-false} -o prog_rpath") || true
hinted=$(env -u LD_LIBRARY_PATH "$prefix/prog_rpath") || hinted="(it did not run)"
passed=0 failed=0
for got in "$out" "$hinted"; do
    if [ "$got" = "$version 15" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
[ "$out" = "$version 15" ] || echo "install check: unexpected output '$out'"
[ "$hinted" = "$version 15" ] || echo "install check: the program built as make install says ('${hint:-no cc line printed}') printed '$hinted'"
echo "install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
