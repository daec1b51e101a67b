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
    mpi_out="(not built)"
    if [ -L "$prefix/lib/libnn_mpi.so.0" ] && [ -f "$prefix/include/nn_mpi.h" ] &&
        cc "$prefix/mpi_prog.c" -o "$prefix/mpi_prog" \
            $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs nn_mpi); then
        mpi_out=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
            LD_LIBRARY_PATH="$prefix/lib" timeout 60 \
            mpirun --oversubscribe -np 2 "$prefix/mpi_prog" | sort -u)
    fi
    if [ "$mpi_out" = "1 2" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "install check: the libnn_mpi program (pkg-config nn_mpi, 2 processes) printed '$mpi_out'"
    fi
fi

# The tools run from the prefix with no environment, on the installed
# library (their rpath), which make uninstall removes with them.
tool=$(env -u LD_LIBRARY_PATH "$prefix/bin/nn-inspect" --version 2>&1) || tool="(it did not run: $tool)"
lib_used=$(env -u LD_LIBRARY_PATH ldd "$prefix/bin/nn-inspect" 2>/dev/null | sed -n 's/^[[:space:]]*libnn\.so\.[0-9]* => \([^ ]*\).*/\1/p')
make -s uninstall PREFIX="$prefix"
if [ "$tool" = "nn-inspect (libnn $version)" ] && [ "$lib_used" = "$prefix/lib/libnn.so.0" ] &&
    [ ! -e "$prefix/bin/nn-inspect" ]; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "install check: bin/nn-inspect printed '$tool', used libnn at '$lib_used', or survived uninstall"
fi
echo "install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
