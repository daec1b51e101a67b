"""MobileNetV2 parity: torchvision's mobilenet_v2 (or, when torchvision is
absent, the exporter's own definition with the same modules, state_dict
and forward) with seeded random weights, exported by
scripts/export_torchvision_mobilenet_v2.py, loaded by libnn into
nn_mobilenet_v2(96, 96, 3, torchvision flavour) through
nn_model_load_safetensors(NN_WEIGHTS_TORCHVISION_MOBILENET_V2), eval-mode
forward on the same batch of two 96x96 images.

BatchNorm's gamma and beta are random and its running statistics are
calibrated on random batches, so they are far from (1, 0, 0, 1) and an
error in their mapping, in the depthwise kernels' layout or in eval-mode
BN shows. The reference runs in float64; libnn in float32. Max relative
error <= 1e-4 on the 1280 pooled features ("global_average_pooling2d")
and on the logits (classifier_activation=None); the 3x3x1280 map before
pooling ("out_relu") is compared too, so a spatial shift (a padding
placed on the wrong side) cannot hide in the average.
"""


import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch (Debian package python3-torch) is not installed")

import libnn  # noqa: E402
from nnref import load_script  # noqa: E402

TOL = 1e-4
SIZE = 96


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(torch model in float64, path of its safetensors export)."""
    script = load_script("export_torchvision_mobilenet_v2.py")
    model = script.random_mobilenet_v2(seed=1234, randomize_bn=True,
                                       calibrate_batches=2, size=SIZE)
    path = str(tmp_path_factory.mktemp("mobilenet") / "mnv2.safetensors")
    script.export(model, path, "test")
    return model.double(), path


def torch_forward(model, x_nhwc):
    with torch.no_grad():
        x = torch.from_numpy(x_nhwc).double().permute(0, 3, 1, 2)
        fmap = model.features(x)
        feats = fmap.mean(dim=(2, 3))
        logits = model.classifier(feats)
    return fmap.permute(0, 2, 3, 1), feats, logits


def test_mobilenet_v2_torchvision_parity(exported, parity):
    model, path = exported
    x = np.random.default_rng(7).standard_normal((2, SIZE, SIZE, 3),
                                                 dtype=np.float32)
    ref_map, ref_feats, ref_logits = torch_forward(model, x)

    m = libnn.Model.mobilenet_v2((SIZE, SIZE, 3), include_top=True,
                                 classes=1000, flavor="torchvision",
                                 classifier_activation=None)
    m.load_safetensors(path, names="torchvision_mobilenet_v2")
    logits = m.predict(x, batch_size=2)
    m.set_output(m.layer("global_average_pooling2d"))
    feats = m.predict(x, batch_size=2)
    m.set_output(m.layer("out_relu"))
    fmap = m.predict(x, batch_size=2)
    parity.compare(feature_map=(fmap, ref_map, TOL),
                   features=(feats, ref_feats, TOL),
                   logits=(logits, ref_logits, TOL))
    # The statistics matter: the features are far from BN-as-identity ones.
    assert float(ref_feats.abs().max()) > 0.1


def test_keras_flavour_differs(exported):
    """The Keras flavour pads stride-2 convolutions bottom/right only: the
    same weights give another output, so the flavours are not aliases."""
    model, path = exported
    x = np.random.default_rng(8).standard_normal((1, SIZE, SIZE, 3),
                                                 dtype=np.float32)
    tv = libnn.Model.mobilenet_v2((SIZE, SIZE, 3), include_top=False,
                                  flavor="torchvision")
    tv.load_safetensors(path, names="torchvision_mobilenet_v2")
    keras = libnn.Model.mobilenet_v2((SIZE, SIZE, 3), include_top=False,
                                     flavor="keras")
    # same weights under libnn names (Keras' flavour has no Conv1_pad)
    for layer in keras.layers:
        for i, w in enumerate(layer.weights):
            w[...] = tv.layer(layer.name).weights[i]
    a = tv.predict(x, batch_size=1)
    b = keras.predict(x, batch_size=1)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) > 1e-3


def test_notop_skips_the_classifier(exported):
    _, path = exported
    m = libnn.Model.mobilenet_v2((32, 32, 3), include_top=False,
                                 flavor="torchvision")
    m.load_safetensors(path, names="torchvision_mobilenet_v2")
    assert m.output_layer.name == "out_relu"


def test_wrong_map_and_width_are_refused(exported):
    _, path = exported
    m = libnn.Model.mobilenet_v2((32, 32, 3), include_top=False,
                                 flavor="torchvision")
    with pytest.raises(libnn.UnsupportedError, match=r"nn_resnet50"):
        m.load_safetensors(path, names="torchvision_resnet")
    half = libnn.Model.mobilenet_v2((32, 32, 3), include_top=False,
                                    flavor="torchvision", alpha=0.5)
    with pytest.raises(libnn.ShapeError, match=r"features\.0\.0\.weight"):
        half.load_safetensors(path, names="torchvision_mobilenet_v2")
