#!/bin/sh
# Runs the Python binding tests and the PyTorch parity suite, if present.
[ -d tests/python ] || { echo "no Python tests"; exit 0; }
PY=${PYTHON:-/usr/bin/python3}
# The library under test: $LIBDIR (make passes its own), else lib/.
case ${LIBDIR:-lib} in
/*) lib=$LIBDIR/libnn.so ;;
*) lib=$(pwd)/${LIBDIR:-lib}/libnn.so ;;
esac
LIBNN_PATH="$lib" PYTHONPATH="$(pwd)/python" "$PY" -m pytest -q tests/python
rc=$?
[ $rc -eq 5 ] && { echo "no Python tests collected"; exit 0; }
exit $rc
