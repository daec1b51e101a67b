"""The ctypes binding itself: declarations, struct layouts, argument checks,
error mapping, lifetimes, saving, fit and the data helpers. Needs only
numpy (no PyTorch)."""

import ctypes
import gc
import os
import re
import shutil
import subprocess
import threading

import numpy as np
import pytest

import libnn
from libnn import _lib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HEADER = os.path.join(ROOT, "include", "nn.h")
FASHION = "/usr/share/datasets/fashion-mnist"


def small_model(seed=1, loss="categorical_crossentropy", compile=True):
    m = libnn.Model(seed)
    x = m.input((6, 6, 2))
    x = m.conv2d(x, 3, 3, activation="relu")
    x = m.maxpool2d(x, 2)
    x = m.flatten(x)
    m.dense(x, 4, activation="softmax")
    if compile:
        m.compile(libnn.Adam(), loss)
    return m


def data(rng, n=10):
    x = rng.uniform(0, 1, (n, 6, 6, 2)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, n)]
    return x, y


# ------------------------------------------------------------ declarations
def test_every_header_function_is_declared():
    text = open(HEADER).read()
    names = set(re.findall(r"NN_API\s+[^;(]*?\b(nn_\w+)\s*\(", text))
    assert len(names) >= 70
    declared = set(_lib._SIGNATURES)
    assert names - declared == set(), "missing in _lib.py"
    assert declared - names == set(), "not in nn.h"
    for name in names:
        f = getattr(_lib.lib, name)
        assert f.argtypes is not None, name


def _c_layout_program(structs):
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <nn.h>",
             "int main(void) {"]
    for cname, cls in structs:
        lines.append(f'printf("{cname} size %zu\\n", sizeof({cname}));')
        for field, _ in cls._fields_:
            lines.append(f'printf("{cname} {field} %zu\\n", '
                         f'offsetof({cname}, {field}));')
    lines += ["return 0;", "}"]
    return "\n".join(lines)


def _header_structs():
    """Every struct the header defines with a body: the options structs and
    nn_progress. Opaque handles have no body and are not listed."""
    text = open(HEADER).read()
    return sorted(set(re.findall(r"typedef struct (nn_\w+) \{", text)))


def test_every_header_struct_is_mirrored():
    names = _header_structs()
    assert "nn_diag_opts" in names and len(names) >= 14
    missing = [n for n in names if not hasattr(_lib, n)]
    assert missing == [], "no ctypes mirror in _lib.py"


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_struct_layouts_match_the_header(tmp_path):
    """The one layout check: size and every member's offset of each
    struct's ctypes mirror equal the C compiler's."""
    structs = [(n, getattr(_lib, n)) for n in _header_structs()]
    src = tmp_path / "layout.c"
    src.write_text(_c_layout_program(structs))
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-std=c11", "-I", os.path.join(ROOT, "include"),
                    str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True,
                         text=True).stdout.split("\n")
    expect = []
    for cname, cls in structs:
        expect.append(f"{cname} size {ctypes.sizeof(cls)}")
        expect += [f"{cname} {f} {getattr(cls, f).offset}"
                   for f, _ in cls._fields_]
    assert [ln for ln in out if ln] == expect


def test_opts_defaults_and_size():
    o = _lib.make_opts(_lib.nn_conv2d_opts)
    assert o.size == ctypes.sizeof(_lib.nn_conv2d_opts)
    assert (o.stride_h, o.stride_w, o.use_bias) == (1, 1, 1)
    a = _lib.make_opts(_lib.nn_adam_opts)
    assert a.epsilon == pytest.approx(1e-7) and a.beta2 == pytest.approx(.999)
    b = _lib.make_opts(_lib.nn_batchnorm_opts)
    assert (b.momentum, b.center, b.scale) == (pytest.approx(0.99), 1, 1)
    assert b.epsilon == pytest.approx(1e-3)


def test_version_and_threads():
    text = open(HEADER).read()
    part = [int(re.search(rf"#define NN_VERSION_{k} (\d+)", text).group(1))
            for k in ("MAJOR", "MINOR", "PATCH")]
    assert libnn.version() == ".".join(map(str, part))
    assert libnn.__version__ == libnn.version()
    assert libnn.version_number() == part[0] * 10000 + part[1] * 100 + part[2]
    before = libnn.get_num_threads()
    libnn.set_num_threads(1)
    assert libnn.get_num_threads() == 1
    libnn.set_num_threads(0)
    assert libnn.get_num_threads() >= 1
    libnn.set_num_threads(before)


# ------------------------------------------------------- argument checks
BAD_X = [  # refused by the binding itself: C is never called
    ("list", lambda x: x.tolist(), libnn.InvalidType),
    ("complex", lambda x: x.astype(np.complex64), libnn.InvalidType),
    ("strings", lambda x: x.astype(str), libnn.InvalidType),
    ("float64 overflow", lambda x: x.astype(np.float64) * 1e300,
     libnn.InvalidArgument),
    ("int beyond 2**24", lambda x: (x * 2**26).astype(np.int64),
     libnn.InvalidArgument),
    ("empty", lambda x: x[:0], libnn.InvalidArgument),
]


@pytest.mark.parametrize("what,bad,exc", BAD_X, ids=[b[0] for b in BAD_X])
def test_bad_arrays_fail_before_c(rng, what, bad, exc):
    m = small_model()
    x, y = data(rng)
    xb = bad(x)
    for call in (lambda: m.predict(xb), lambda: m.train_batch(xb, y),
                 lambda: m.evaluate(xb, y), lambda: m.backward(xb, y),
                 lambda: m.fit(xb, y, verbose=0)):
        _lib.lib.nn_clear_error()
        with pytest.raises(exc) as e:
            call()
        assert isinstance(e.value, libnn.Error)
        assert e.value.message.startswith("x: ")
        assert _lib.last_error() == ""  # C was never asked
    assert m.iterations == 0


CONVERTED_X = [  # converted by the documented rule, then as float32
    ("float64", lambda x: x.astype(np.float64)),
    ("float16", lambda x: x.astype(np.float16)),
    ("non-contiguous", lambda x: np.asfortranarray(x)),
    ("strided", lambda x: np.repeat(x, 2, axis=3)[..., ::2]),
]


@pytest.mark.parametrize("what,conv", CONVERTED_X,
                         ids=[c[0] for c in CONVERTED_X])
def test_inputs_are_converted(rng, what, conv):
    x, y = data(rng)
    xc = conv(x)
    want = xc.astype(np.float32)  # the rule: round to nearest float32
    a, b = small_model(seed=4), small_model(seed=4)
    np.testing.assert_array_equal(a.predict(xc), b.predict(want))
    assert a.train_batch(xc, y) == b.train_batch(want, y)
    assert a.evaluate(xc, y) == b.evaluate(want, y)


def test_integer_labels_and_images_are_converted(rng):
    x, y = data(rng)
    ids = y.argmax(1)
    s, f = (small_model(seed=5, loss="sparse_categorical_crossentropy")
            for _ in range(2))
    assert s.train_batch(x, ids) == f.train_batch(x, ids.astype(np.float32))
    c, g = small_model(seed=6), small_model(seed=6)
    assert c.train_batch(x, y.astype(np.uint8)) == g.train_batch(x, y)
    pixels = (x * 255).astype(np.uint8)  # exact in float32
    np.testing.assert_array_equal(c.predict(pixels),
                                  c.predict(pixels.astype(np.float32)))
    np.testing.assert_array_equal(libnn.one_hot(np.array([2, 0, 3]), 4),
                                  np.eye(4, dtype=np.float32)[[2, 0, 3]])
    with pytest.raises(libnn.InvalidType):
        libnn.Tensor(x.astype(np.float64))  # wrapping never copies


def test_shape_errors_come_from_the_library(rng):
    m = small_model()
    x, y = data(rng)
    with pytest.raises(libnn.ShapeError) as e:
        m.fit(x.reshape(x.shape[0], 6, 12, 1), y, verbose=0)
    assert str(e.value).startswith(
        "nn_model_fit: x has shape (10, 6, 12, 1), expected (None, 6, 6, 2)")
    with pytest.raises(libnn.ShapeError, match="nn_model_predict: x has "
                       r"shape \(6, 6, 2\)"):
        m.predict(x[0])
    with pytest.raises(libnn.ShapeError, match="y holds 3 values per sample"
                       ", but the loss needs 4"):
        m.train_batch(x, y[:, :3].copy())
    with pytest.raises(libnn.ShapeError, match="y has 5 samples, x has 10"):
        m.evaluate(x, y[:5])
    with pytest.raises(libnn.ShapeError, match="nn_one_hot"):
        m.train_batch(x, y.argmax(1))  # class ids for categorical CE
    s = small_model(loss="sparse_categorical_crossentropy")
    with pytest.raises(libnn.ShapeError, match="one-hot rows it seems"):
        s.train_batch(x, y)
    assert m.iterations == 0 and s.iterations == 0


def test_bad_builder_arguments():
    m = libnn.Model(0)
    x = m.input((8, 8, 3))
    with pytest.raises(ValueError):
        m.conv2d(x, 4, 3, padding="full")
    with pytest.raises(ValueError):
        m.conv2d(x, 4, 3, activation="swish")
    with pytest.raises(ValueError):
        m.conv2d(x, 0, 3)
    with pytest.raises(TypeError):
        m.conv2d(x, 4.0, 3)
    with pytest.raises(ValueError):
        m.dropout(x, 1.0)
    with pytest.raises(TypeError):
        m.dense("x", 3)
    other = libnn.Model(0)
    with pytest.raises(ValueError):
        m.dense(other.input((3,)), 2)
    with pytest.raises(ValueError):
        m.compile("adam", "mse")
    with pytest.raises(ValueError):
        libnn.Adam(eps_mode="tf")


# ---------------------------------------------------------- C errors
def test_status_errors_carry_the_message(rng):
    m = small_model(compile=False)
    x, y = data(rng)
    with pytest.raises(libnn.StateError) as e:
        m.train_batch(x, y)
    assert isinstance(e.value, RuntimeError)
    assert e.value.status == -7 and "compile" in e.value.message


def test_null_constructor_raises(rng):
    m = libnn.Model(0)
    x = m.input((4,))
    m.dense(x, 2, name="d")
    with pytest.raises(libnn.Error) as e:
        m.dense(x, 2, name="d")  # duplicate name
    assert "already" in str(e.value)
    with pytest.raises(libnn.Error):
        m.conv2d(x, 2, 3)  # Conv2D on a rank-1 input


def test_label_and_numeric_errors(rng):
    s = small_model(loss="sparse_categorical_crossentropy")
    x, _ = data(rng)
    with pytest.raises(libnn.InvalidArgument) as e:
        s.train_batch(x, np.full(10, 7, np.float32))
    assert "class id" in e.value.message
    m = libnn.Model(0)
    m.dense(m.input((3,)), 2)
    m.compile("sgd", "binary_crossentropy", from_logits=True)
    xn = np.full((2, 3), np.nan, np.float32)
    with pytest.raises(libnn.NumericError):
        m.train_batch(xn, np.zeros((2, 2), np.float32))


def test_load_errors(tmp_path):
    with pytest.raises(libnn.FileError) as e:
        libnn.Model.load(tmp_path / "missing.nnm")
    assert isinstance(e.value, OSError)
    bad = tmp_path / "bad.nnm"
    bad.write_bytes(b"NNMODEL\0" + b"\x01" * 40)
    with pytest.raises(libnn.Error):
        libnn.Model.load(bad)


# ------------------------------------------------------------- lifetimes
def test_close_is_idempotent_and_layers_fail_cleanly(rng):
    m = small_model()
    layer = m.layer("conv2d")
    m.close()
    m.close()
    assert m.closed
    with pytest.raises(libnn.StateError):
        layer.name
    with pytest.raises(libnn.StateError):
        layer.weights
    with pytest.raises(libnn.StateError):
        m.predict(data(rng)[0])
    assert "closed" in repr(m) and "closed" in repr(layer)


def test_weight_views_outlive_close(rng):
    with small_model() as m:
        k = m.layer("conv2d").weights[0]
        before = k.copy()
    assert m.closed
    del m
    gc.collect()
    # The model's memory stays until the view goes: reading and writing are
    # safe, and the view is the model's own data (unchanged).
    np.testing.assert_array_equal(k, before)
    k[...] = 1.0
    assert k.sum() == k.size
    del k
    gc.collect()


def test_weights_are_live_views(rng):
    m = small_model()
    x, y = data(rng)
    dense = m.layer("dense")
    assert dense.weight_names == ["kernel", "bias"]
    assert dense.grads == [None, None]
    p0 = m.predict(x)
    dense.weights[1][:] = [10, 0, 0, 0]
    p1 = m.predict(x)
    assert not np.allclose(p0, p1) and (p1.argmax(1) == 0).all()
    k = dense.weight("kernel")
    assert k.shape == (12, 4) and k.base is not None
    m.backward(x, y)
    g = dense.grad("kernel")
    assert g.shape == (12, 4) and np.abs(g).sum() > 0
    k0 = k.copy()
    m.train_batch(x, y)  # the view sees the update in place
    assert not np.array_equal(k, k0)
    assert m.iterations == 1


def test_context_keeps_model_alive_and_predicts(rng):
    m = small_model()
    x, _ = data(rng, 20)
    want = m.predict(x)
    ctx = m.context()
    m.close()
    np.testing.assert_array_equal(ctx.predict(x, batch_size=7), want)
    ctx.close()
    with pytest.raises(libnn.StateError):
        ctx.predict(x)


def test_contexts_in_threads(rng):
    m = small_model()
    x, _ = data(rng, 64)
    want = m.predict(x)
    got = {}

    def work(k):
        with m.context() as c:
            for _ in range(5):
                got[k] = c.predict(x, batch_size=8)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k in range(3):
        np.testing.assert_array_equal(got[k], want)


def test_tensor_wraps_without_copy():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    tz = libnn.Tensor(a)
    assert tz.shape == (3, 4) and tz.size == 12 and tz.numpy() is a
    addr = ctypes.cast(_lib.lib.nn_tensor_data(tz._ptr), ctypes.c_void_p)
    assert addr.value == a.ctypes.data
    z = libnn.Tensor.zeros((2, 5))
    v = z.numpy()
    v[1, 2] = 3
    assert z.numpy()[1, 2] == 3 and v.sum() == 3
    z.close()
    assert v[1, 2] == 3  # the view kept the memory
    with pytest.raises(libnn.InvalidType):
        libnn.Tensor(a.astype(np.float64))


# --------------------------------------------------------------- features
def test_builders_shapes_and_summary():
    m = libnn.Model(0)
    x = m.input((10, 9, 3), name="img")
    c = m.conv2d(x, 8, (3, 2), strides=(2, 1), padding="same", name="c")
    p = m.avgpool2d(c, 2, padding="same")
    q = m.maxpool2d(p, (1, 2), strides=1)
    f = m.flatten(q)
    d = m.dropout(f, 0.25)
    r = m.relu(m.sigmoid(m.dense(d, 6, use_bias=False)))
    out = m.softmax(r)
    assert c.output_shape == (5, 9, 8)
    assert p.output_shape == (3, 5, 8)
    assert q.output_shape == (3, 4, 8)
    assert f.output_shape == (96,)
    assert out.output_shape == (6,) and m.output_shape == (6,)
    assert m.input_shape == (10, 9, 3)
    assert [layer.type for layer in m.layers] == [
        "InputLayer", "Conv2D", "AveragePooling2D", "MaxPooling2D",
        "Flatten", "Dropout", "Dense", "Activation", "ReLU", "Softmax"]
    assert m.layer("c") == c and m.layer(1) == c and m.layer(-1) == out
    assert c.inputs == [x]
    assert m.num_params == 3 * 2 * 3 * 8 + 8 + 96 * 6
    assert m.num_trainable_params == m.num_params
    s = m.summary()
    assert "c (Conv2D)" in s and f"{m.num_params:,}" in s
    with pytest.raises(KeyError):
        m.layer("nope")


def test_set_output(rng):
    m = libnn.Model(0)
    x = m.input((4,))
    h = m.dense(x, 3, activation="relu")
    m.dense(h, 2)
    m.set_output(h)
    assert m.output_shape == (3,)
    assert m.predict(rng.standard_normal((2, 4)).astype(np.float32)).shape \
        == (2, 3)


def test_save_load_roundtrip(tmp_path, rng):
    m = small_model()
    x, y = data(rng, 16)
    m.train_batch(x, y)
    path = tmp_path / "m.nnm"
    m.save(path, optimizer=True)
    m2 = libnn.Model.load(path)
    np.testing.assert_array_equal(m2.predict(x), m.predict(x))
    assert m2.summary() == m.summary()
    assert m2.output_shape == (4,) and m2.input_shape == (6, 6, 2)
    # The loaded model is compiled with its optimizer: training continues
    # the same way on both.
    l1 = m.train_batch(x, y)
    l2 = m2.train_batch(x, y)
    assert l1 == pytest.approx(l2, rel=1e-6)
    np.testing.assert_allclose(m2.layer("dense").weights[0],
                               m.layer("dense").weights[0], rtol=1e-6)
    m.save(str(path))  # str paths too; replaces the file
    assert libnn.Model.load(str(path)).num_params == m.num_params


def test_fit_history_and_callback(rng):
    m = small_model()
    x, y = data(rng, 40)
    seen = []
    h = m.fit(x, y, epochs=3, batch_size=16, validation_data=(x, y),
              callback=seen.append)
    assert set(h) == {"loss", "accuracy", "val_loss", "val_accuracy",
                      "seconds"}
    assert all(len(v) == 3 for v in h.values())
    ends = [p for p in seen if p.event == "epoch_end"]
    assert len(ends) == 3 and len(seen) == 3 * 3 + 3
    assert ends[-1].loss == pytest.approx(h["loss"][-1])
    assert ends[-1].val_loss == pytest.approx(h["val_loss"][-1])
    assert seen[0].batches == 3 and seen[0].samples_seen == 16
    assert m.iterations == 9
    h = m.fit(x, y, epochs=1, batch_size=40, shuffle=False)
    assert set(h) == {"loss", "accuracy", "seconds"}


def test_fit_callback_stops_and_raises(rng):
    m = small_model()
    x, y = data(rng, 32)
    h = m.fit(x, y, epochs=5, batch_size=8,
              callback=lambda p: p.event == "epoch_end" and p.epoch == 1)
    assert len(h["loss"]) == 2
    h = m.fit(x, y, epochs=5, batch_size=8, callback=lambda p: True)
    assert h == {"loss": [], "accuracy": [], "seconds": []}

    def boom(p):
        raise KeyError("from the callback")
    with pytest.raises(KeyError, match="from the callback"):
        m.fit(x, y, epochs=2, batch_size=8, callback=boom)


def test_one_hot(rng):
    ids = np.array([2, 0, 3], np.float32)
    np.testing.assert_array_equal(libnn.one_hot(ids, 4),
                                  np.eye(4, dtype=np.float32)[[2, 0, 3]])
    with pytest.raises(libnn.InvalidArgument):
        libnn.one_hot(np.array([5], np.float32), 4)


@pytest.mark.skipif(not os.path.isdir(FASHION),
                    reason="dataset-fashion-mnist is not installed")
def test_load_idx_fashion_mnist():
    x = libnn.load_idx(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz"))
    y = libnn.load_idx(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz"),
                       scale=False)
    assert x.shape == (10000, 28, 28, 1) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.99
    assert y.shape == (10000,) and set(np.unique(y)) == set(range(10))


def test_limits(tmp_path):
    assert libnn.get_limits() == {"model_bytes": 1 << 31,
                                  "data_bytes": 1 << 31}
    path = tmp_path / "labels.idx"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 100]) + bytes(range(100)))
    try:
        libnn.set_limits(data_bytes=399)
        assert libnn.get_limits()["data_bytes"] == 399
        with pytest.raises(libnn.OutOfMemory, match="data limit"):
            libnn.load_idx(str(path), scale=False)
        libnn.set_limits(data_bytes=400)
        assert libnn.load_idx(str(path), scale=False).shape == (100,)
        with pytest.raises(libnn.InvalidArgument, match=">= 0"):
            libnn.set_limits(model_bytes=-1)
    finally:
        libnn.set_limits()
    assert libnn.get_limits()["data_bytes"] == 1 << 31


def test_fit_one_full_batch_equals_train_batch(rng):
    x, y = data(rng, 12)
    a, b = small_model(seed=9), small_model(seed=9)
    h = a.fit(x, y, epochs=1, batch_size=12, shuffle=False)
    loss, acc = b.train_batch(x, y)
    assert h["loss"][0] == pytest.approx(loss, rel=1e-6)
    assert h["accuracy"][0] == pytest.approx(acc)
    for la, lb in zip(a.layers, b.layers):
        for wa, wb in zip(la.weights, lb.weights):
            np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)


def test_predict_in_chunks_equals_one_batch(rng):
    m = small_model()
    x, _ = data(rng, 23)
    np.testing.assert_allclose(m.predict(x, batch_size=4),
                               m.predict(x, batch_size=23), rtol=1e-6)


def test_apply_shares_weights_and_outlives_inner():
    inner = libnn.Model(3)
    inner.name = "block"
    x = inner.input((6, 6, 2))
    c = inner.conv2d(x, 3, 3, name="c1")
    inner.flatten(inner.conv2d(c, 2, 3, name="c2"))
    outer = libnn.Model(4)
    y = outer.input((6, 6, 2))
    h = outer.apply(y, inner, output=c)        # first layers only
    assert h.name == "c1" and h.output_shape == (4, 4, 3)
    outer.dense(outer.flatten(h), 2)
    assert "block (Functional)" in outer.summary()
    inner.layer("c1").weights[0][...] = 0.5
    assert np.all(outer.layer("c1").weights[0] == 0.5)
    inner.close()
    out = outer.predict(np.ones((1, 6, 6, 2), np.float32))
    assert out.shape == (1, 2) and np.all(np.isfinite(out))
    with pytest.raises(libnn.ShapeError):
        outer.apply(outer.layer(-1), _conv_block())  # (2,) vs (6, 6, 2)


def _conv_block():
    m = libnn.Model(5)
    m.conv2d(m.input((6, 6, 2)), 2, 3)
    return m
