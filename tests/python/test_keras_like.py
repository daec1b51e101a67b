"""The binding as a Keras user expects it (docs/python.md): fit's progress
output and History, validation_split, compile's metrics, a loaded model's
optimizer and loss, predictions that do not depend on how the model is
reached, and errors that are all libnn.Error, name their function once and
shadow no built-in. Needs only numpy."""

import builtins
import io
import re
import sys
import warnings

import numpy as np
import pytest

import libnn
from libnn import history as history_module


def classifier(seed=1, loss="categorical_crossentropy", **compile_args):
    m = libnn.Model(seed)
    x = m.input((6, 6, 2))
    x = m.conv2d(x, 3, 3, activation="relu")
    x = m.flatten(x)
    m.dense(x, 4, activation="softmax")
    m.compile(libnn.Adam(), loss, **compile_args)
    return m


def data(rng, n=40):
    x = rng.uniform(0, 1, (n, 6, 6, 2)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, n)]
    return x, y


# ------------------------------------------------------------- errors
def test_messages_name_their_function_once(rng):
    m = classifier()
    x, y = data(rng)
    x[3, 1, 1, 0] = np.nan
    with pytest.raises(libnn.NumericError) as e:
        m.fit(x, y, verbose=0)
    assert str(e.value).startswith("nn_model_fit: x holds NaN in sample 3")
    assert str(e.value).count("nn_model_fit") == 1
    assert e.value.function == "nn_model_fit"
    with pytest.raises(libnn.NumericError) as e:
        m.train_batch(x, y)
    assert str(e.value).count("nn_model_train_batch:") == 1
    # A message without the function's name gets it once, in front.
    with pytest.raises(libnn.Error) as e:
        m.dense(m.input_layer, 2, name="dense")  # the name is taken
    text = str(e.value)
    assert text.startswith("nn_dense: ") and text.count("nn_dense:") == 1


def test_argument_errors_are_libnn_errors():
    m = libnn.Model(0)
    x = m.input((8, 8, 3))
    with pytest.raises(libnn.InvalidArgument) as e:
        m.conv2d(x, 4, 3, padding="full")
    assert isinstance(e.value, ValueError) and e.value.status == -1
    with pytest.raises(libnn.InvalidType) as e:
        m.conv2d(x, 4.0, 3)
    assert isinstance(e.value, TypeError)
    assert isinstance(e.value, libnn.InvalidArgument)
    c = m.conv2d(x, 4, 3)
    with pytest.raises(libnn.ShapeError) as e:  # refused in Python
        c.set_weights([np.zeros((2, 2, 3, 4)), np.zeros(4)])
    assert isinstance(e.value, ValueError) and e.value.status == -2
    with pytest.raises(libnn.Error):
        m.compile("adamw")
    with pytest.raises(libnn.Error):
        libnn.Adam(learning_rate=-1)
    with pytest.raises(libnn.InvalidType):
        libnn.one_hot(np.array([1, 2]), 2.5)


def test_star_import_shadows_no_builtin():
    names = {}
    exec("from libnn import *", names)
    names.pop("__builtins__", None)
    assert set(names) & set(dir(builtins)) == set()
    assert "FileError" in names and "IOError" not in libnn.__all__
    with pytest.warns(DeprecationWarning, match="FileError"):
        assert libnn.IOError is libnn.FileError
    with pytest.warns(DeprecationWarning):
        assert libnn.errors.IOError is libnn.FileError
    assert issubclass(libnn.FileError, OSError)
    with pytest.raises(AttributeError):
        libnn.NoSuchThing


# ------------------------------------------------------ fit like Keras
LINE = re.compile(r"^(\d+)/\1 - \d+s - loss: (\d\.\d{4}) - accuracy: "
                  r"\d\.\d{4} - val_loss: (\d\.\d{4}) - val_accuracy: "
                  r"\d\.\d{4}$")


@pytest.mark.parametrize("verbose", [1, 2, "auto"])
def test_fit_prints_keras_lines(rng, capsys, verbose):
    m = classifier()
    x, y = data(rng)
    h = m.fit(x, y, epochs=2, batch_size=16, validation_data=(x, y),
              verbose=verbose)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert len(lines) == 4
    for e, line in enumerate(lines[1::2]):
        got = LINE.match(line)
        assert got, line
        assert got.group(1) == "3"  # batches of the epoch
        assert float(got.group(2)) == pytest.approx(h["loss"][e], abs=6e-5)
        assert float(got.group(3)) == pytest.approx(h["val_loss"][e],
                                                    abs=6e-5)


def test_fit_verbose_zero_is_silent(rng, capsys):
    m = classifier()
    x, y = data(rng)
    m.fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    with pytest.raises(libnn.InvalidArgument, match="verbose"):
        m.fit(x, y, verbose=3)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_fit_draws_a_bar_on_a_terminal(rng, monkeypatch):
    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(history_module.ProgressPrinter, "INTERVAL", 0.0)
    m = classifier()
    x, y = data(rng)
    m.fit(x, y, epochs=1, batch_size=8, verbose=1)
    out = screen.getvalue()
    frames = out.split("\r")
    assert frames[0] == "Epoch 1/1\n"
    # One frame per batch but the last, then the epoch's line.
    assert [f[:6] for f in frames[1:-1]] == ["1/5 [=", "2/5 [=", "3/5 [=",
                                             "4/5 [="]
    assert "- ETA: " in frames[1] and "- loss: " in frames[1]
    assert re.match(r"^5/5 \[={30}\] - \d+s \d+(ms|us|s)/step - loss: "
                    r"\d\.\d{4} - accuracy: \d\.\d{4} *\n$", frames[-1])
    # verbose=2 on a terminal: the lines alone.
    screen.truncate(0)
    screen.seek(0)
    m.fit(x, y, epochs=1, batch_size=8, verbose=2)
    assert "\r" not in screen.getvalue()


def test_fit_returns_a_history(rng):
    m = classifier()
    x, y = data(rng)
    seen = []
    h = m.fit(x, y, epochs=2, batch_size=16, validation_data=(x, y),
              callback=seen.append, verbose=0)
    assert isinstance(h, libnn.History)
    assert list(h.history) == ["loss", "accuracy", "val_loss",
                               "val_accuracy", "seconds"]
    assert h.epoch == [0, 1]
    assert h.params == {"epochs": 2, "steps": 3, "verbose": 0}
    assert h.model is m
    assert h["loss"] is h.history["loss"] and "val_loss" in h
    assert dict(h) == h.history and len(seen) == 2 * 3 + 2


def test_validation_split_takes_the_last_fraction(rng):
    x, y = data(rng, 40)
    a, b = classifier(seed=7), classifier(seed=7)
    ha = a.fit(x, y, epochs=2, batch_size=8, validation_split=0.25,
               verbose=0)
    hb = b.fit(x[:30], y[:30], epochs=2, batch_size=8,
               validation_data=(x[30:], y[30:]), verbose=0)
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert ha[k] == hb[k], k
    assert ha.params["steps"] == 4
    with pytest.raises(libnn.InvalidArgument, match="not both"):
        a.fit(x, y, validation_split=0.2, validation_data=(x, y))
    for bad in (1.0, -0.1):
        with pytest.raises(libnn.InvalidArgument, match=r"\[0, 1\)"):
            a.fit(x, y, validation_split=bad)
    with pytest.raises(libnn.InvalidArgument, match="no training sample"):
        a.fit(x[:1], y[:1], validation_split=0.5)
    with pytest.raises(libnn.InvalidType):
        a.fit(x, y, validation_split="0.2")


def test_compile_metrics(rng):
    m = classifier(metrics=["acc", "accuracy"])
    assert m.metrics == ["accuracy"]
    x, y = data(rng)
    assert "iou" not in m.fit(x, y, verbose=0)
    m = classifier(metrics=["accuracy", "mean_iou"])
    h = m.fit(x, y, validation_data=(x, y), verbose=0)
    assert {"iou", "mean_iou", "dice", "pixel_accuracy",
            "val_mean_iou"} <= set(h)
    assert "iou" not in m.fit(x, y, segmentation_metrics=False, verbose=0)
    with pytest.raises(libnn.InvalidArgument) as e:
        classifier(metrics=["accuracy", "auc"])
    assert "'auc' is not a metric libnn computes" in str(e.value)
    with pytest.raises(libnn.InvalidType):
        classifier(metrics="accuracy")


# ------------------------------------------- optimizer and loss of a model
def test_loaded_model_has_its_optimizer_and_loss(rng, tmp_path):
    m = classifier()
    m.compile(libnn.Adam(learning_rate=0.005), "categorical_crossentropy")
    assert isinstance(m.optimizer.config, libnn.Adam)
    x, y = data(rng, 24)
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    m.save(tmp_path / "a.nnm", optimizer=True)
    m.save(tmp_path / "b.nnm")
    a = libnn.Model.load(tmp_path / "a.nnm")
    assert a.loss == "categorical_crossentropy"
    opt = a.optimizer
    assert isinstance(opt, libnn.Optimizer) and opt.config is None
    assert opt.learning_rate == pytest.approx(0.005)
    assert opt.iterations == 3 and a.iterations == 3
    opt.learning_rate = 1e-4
    assert a.optimizer.learning_rate == pytest.approx(1e-4)
    a.set_learning_rate(2e-4)
    assert opt.learning_rate == pytest.approx(2e-4)
    a.train_batch(x, y)
    assert opt.iterations == 4
    with pytest.raises(libnn.InvalidArgument):
        opt.learning_rate = 0
    b = libnn.Model.load(tmp_path / "b.nnm")
    assert b.loss == "categorical_crossentropy" and b.optimizer is None
    with pytest.raises(libnn.StateError, match="optimizer=True"):
        b.iterations
    w = classifier(loss={"binary_crossentropy": 1.0, "dice": 0.5})
    w.save(tmp_path / "w.nnm")
    assert libnn.Model.load(tmp_path / "w.nnm").loss == {
        "binary_crossentropy": 1.0, "dice": 0.5}
    assert libnn.Model(3).optimizer is None


def test_predictions_do_not_depend_on_the_route(rng, tmp_path):
    """A trained Conv-BN-ReLU model predicts the same bits itself, through
    a new context and once saved and loaded."""
    m = libnn.Model(11)
    x = m.input((8, 8, 2))
    x = m.relu(m.batchnorm(m.conv2d(x, 6, 3, padding="same")))
    m.dense(m.flatten(x), 3, activation="softmax")
    m.compile("adam", "categorical_crossentropy")
    xs = rng.standard_normal((32, 8, 8, 2)).astype(np.float32)
    ys = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)]
    m.fit(xs, ys, epochs=2, batch_size=8, verbose=0)
    own = m.predict(xs)
    with m.context() as c:
        fresh = c.predict(xs)
    m.save(tmp_path / "m.nnm")
    loaded = libnn.Model.load(tmp_path / "m.nnm").predict(xs)
    assert own.tobytes() == fresh.tobytes() == loaded.tobytes()


def test_float64_labels_and_data_keep_their_meaning(rng):
    """The conversion rule of docs/python.md on a whole fit."""
    x, y = data(rng)
    a, b = classifier(seed=9), classifier(seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either
        ha = a.fit(x.astype(np.float64), y.astype(np.int32), epochs=2,
                   batch_size=8, verbose=0)
    hb = b.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert ha["loss"] == hb["loss"]
