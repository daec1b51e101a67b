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
if [ "$out" != "$version 15" ]; then
    echo "install check: unexpected output '$out'"; echo "0 passed, 1 failed"; exit 1
fi

# libnn_mpi, when the build has it: its header, library and nn_mpi.pc, and
# a program built with them running on two processes.
if [ -f "$prefix/lib/pkgconfig/nn_mpi.pc" ]; then
    cat > "$prefix/mpi_prog.c" <<'C'
#include <nn_mpi.h>
#include <stdio.h>
int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    nn_model *m = nn_model_create(1);
    int shape[1] = {4};
    nn_dense(m, nn_input(m, 1, shape, NULL), 3, NULL);
    nn_mpi *s = nn_mpi_create(MPI_COMM_WORLD, m);
    int ok = s && nn_mpi_broadcast(s, 0) == NN_OK;
    printf("%d %d\n", ok, nn_mpi_size(s));
    nn_mpi_free(s);
    nn_model_free(m);
    MPI_Finalize();
    return ok ? 0 : 1;
}
C
    PKG_CONFIG_PATH="$prefix/lib/pkgconfig" \
        cc "$prefix/mpi_prog.c" -o "$prefix/mpi_prog" $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs nn_mpi)
    [ -L "$prefix/lib/libnn_mpi.so.0" ] && [ -f "$prefix/include/nn_mpi.h" ]
    out=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 LD_LIBRARY_PATH="$prefix/lib" \
          timeout 60 mpirun --oversubscribe -np 2 "$prefix/mpi_prog" | sort -u)
    if [ "$out" != "1 2" ]; then
        echo "install check: libnn_mpi program printed '$out'"; echo "0 passed, 1 failed"; exit 1
    fi
fi
echo "install: 1 passed, 0 failed"
