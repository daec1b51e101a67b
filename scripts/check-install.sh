#!/bin/sh
# Installs into a temporary prefix and builds a program outside the tree
# with pkg-config, as a user would.
set -e
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
make -s install PREFIX="$prefix" >/dev/null
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
if [ "$out" = "$version 15" ]; then
    echo "install: 1 passed, 0 failed"
else
    echo "install check: unexpected output '$out'"; echo "0 passed, 1 failed"; exit 1
fi
