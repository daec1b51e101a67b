"""Inference for a product through the binding (docs/inference.md):
Model.set_preprocess / preprocess, Context.classify and classify_u8,
checked against a numpy transcription of the documented preprocessing and
of the decision rule. Needs only numpy."""

import numpy as np
import pytest

import libnn


def classifier(seed=3, classes=3, activation="softmax", side=8):
    m = libnn.Model(seed)
    x = m.input((side, side, 3))
    x = m.conv2d(x, 4, 3, activation="relu", padding="same")
    x = m.global_avgpool2d(x)
    m.dense(x, classes, activation=activation)
    return m


def frames(rng, n, side=8):
    return rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)


MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def normalise(f):
    """The documented formula: (pixel * scale - mean[c]) / std[c]."""
    scale = np.float32(1.0 / 255.0)
    return ((f.astype(np.float32) * scale - np.float32(MEAN))
            / np.float32(STD)).astype(np.float32)


def test_preprocess_round_trip(tmp_path):
    m = classifier()
    assert m.preprocess is None
    m.set_preprocess(mean=MEAN, std=STD, channel_order="reversed",
                     resize=True, negative_class=0, threshold=0.25)
    p = m.preprocess
    assert p["channel_order"] == "reversed" and p["resize"] is True
    assert p["negative_class"] == 0 and "positive_class" not in p
    assert p["threshold"] == pytest.approx(0.25)
    assert p["mean"][:3] == pytest.approx(MEAN) and p["std"][3] == 1.0
    m.save(tmp_path / "m.nnm")
    b = libnn.Model.load(tmp_path / "m.nnm")
    assert b.preprocess == p
    # every field is checked by the library
    with pytest.raises(libnn.InvalidArgument, match="threshold 2"):
        m.set_preprocess(threshold=2)
    with pytest.raises(libnn.InvalidArgument, match="channel 1"):
        m.set_preprocess(std=(1, 0, 1))
    with pytest.raises(ValueError, match="channel_order"):
        m.set_preprocess(channel_order="bgr")
    with pytest.raises(libnn.InvalidArgument, match="positive_class 3"):
        m.set_preprocess(positive_class=3)
    assert m.preprocess == p  # unchanged by the refused calls


def test_classify_u8_matches_floats_and_rule():
    rng = np.random.default_rng(0)
    m = classifier()
    m.set_preprocess(mean=MEAN, std=STD, negative_class=0, threshold=0.6)
    f = frames(rng, 6)
    with m.context() as c:
        v = c.classify_u8(f)
        ref = c.classify(normalise(f))
        out = c.predict(normalise(f))
    assert np.array_equal(v["probabilities"], ref["probabilities"])
    assert np.array_equal(v["score"], ref["score"])
    assert np.array_equal(v["probabilities"], out)
    # the decision rule: score = sum of the classes but 0, >= threshold
    score = out[:, 1:].astype(np.float64).sum(axis=1).astype(np.float32)
    assert np.allclose(v["score"], score, atol=1e-6)
    assert np.array_equal(v["defective"], v["score"] >= np.float32(0.6))
    assert np.array_equal(v["predicted_class"], out.argmax(axis=1))


def test_classify_u8_strides_order_and_one_frame():
    rng = np.random.default_rng(1)
    m = classifier(activation="sigmoid", classes=1)
    m.set_preprocess(mean=MEAN, std=STD, threshold=0.5)
    f = frames(rng, 3)
    c = m.context()
    v = c.classify_u8(f)
    assert v["probabilities"].shape == (3, 2)  # 1 - p, p
    assert np.allclose(v["probabilities"].sum(axis=1), 1, atol=1e-6)
    # rows with padding, a frame on its own
    wide = np.zeros((3, 8, 11, 3), np.uint8)
    wide[:, :, :8] = f
    assert np.array_equal(c.classify_u8(wide[:, :, :8])["score"], v["score"])
    one = c.classify_u8(f[1])
    assert one["score"] == pytest.approx(float(v["score"][1]), abs=1e-6)
    assert isinstance(one["defective"], bool)
    # BGR frames declared reversed give the RGB frames' verdicts
    m.set_preprocess(mean=MEAN, std=STD, channel_order="reversed")
    bgr = np.ascontiguousarray(f[..., ::-1])
    assert np.array_equal(c.classify_u8(bgr)["score"], v["score"])
    c.close()
    with pytest.raises(libnn.StateError):
        c.classify_u8(f)


def test_classify_errors():
    rng = np.random.default_rng(2)
    m = classifier()
    c = m.context()
    with pytest.raises(libnn.StateError, match="no preprocessing"):
        c.classify_u8(frames(rng, 1))
    m.set_preprocess()
    with pytest.raises(libnn.ShapeError, match="does not resize"):
        c.classify_u8(frames(rng, 2, side=10))
    m.set_preprocess(resize=True)
    assert c.classify_u8(frames(rng, 2, side=10))["score"].shape == (2,)
    with pytest.raises(TypeError, match="uint8"):
        c.classify_u8(frames(rng, 1).astype(np.float32))
    with pytest.raises(libnn.ShapeError, match="channels"):
        c.classify_u8(frames(rng, 1)[..., :2].copy())
