"""ResNet50 parity: torchvision's resnet50 (or, when torchvision is absent,
the script's own v1.5 definition with the same state_dict) with seeded
random weights, exported by scripts/export_torchvision_resnet50.py, loaded
by libnn into nn_resnet50(224, 224, 3, torchvision flavour) through
nn_model_load_safetensors, eval-mode forward on the same batch of two
224x224 images.

BatchNorm's gamma and beta are random and its running statistics are
calibrated on random batches, so they are far from (1, 0, 0, 1) and an error
in their mapping or in eval-mode BN shows. The reference runs in float64;
libnn in float32. Max relative error <= 1e-4 on the 2048 pooled features
(the "avg_pool" layer) and on the logits (classifier_activation=None).
"""


import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch (Debian package python3-torch) is not installed")

import libnn  # noqa: E402
from nnref import load_script  # noqa: E402
from libnn import _lib  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(torch model in float64, path of its safetensors export)."""
    script = load_script("export_torchvision_resnet50.py")
    model = script.random_resnet50(seed=1234, randomize_bn=True,
                                   calibrate_batches=2)
    path = str(tmp_path_factory.mktemp("resnet") / "resnet50.safetensors")
    script.export(model, path, "test")
    return model.double(), path


def torch_forward(model, x_nhwc):
    feats = {}
    hook = model.avgpool.register_forward_hook(
        lambda mod, inp, out: feats.setdefault("f", out.flatten(1)))
    with torch.no_grad():
        logits = model(torch.from_numpy(x_nhwc).double().permute(0, 3, 1, 2))
    hook.remove()
    return feats["f"], logits


def test_resnet50_torchvision_parity(exported, parity):
    model, path = exported
    x = np.random.default_rng(7).standard_normal((2, 224, 224, 3),
                                                 dtype=np.float32)
    ref_feats, ref_logits = torch_forward(model, x)

    m = libnn.Model.resnet50((224, 224, 3), include_top=True, classes=1000,
                             flavor="torchvision",
                             classifier_activation=None)
    m.load_safetensors(path, names="torchvision_resnet")
    logits = m.predict(x, batch_size=2)
    m.set_output(m.layer("avg_pool"))
    feats = m.predict(x, batch_size=2)
    parity.compare(features=(feats, ref_feats, TOL),
                   logits=(logits, ref_logits, TOL))
    # The statistics matter: the features are far from BN-as-identity ones.
    assert float(ref_feats.abs().max()) > 0.1


def test_keras_flavour_rejects_torchvision_file(exported):
    _, path = exported
    m = libnn.Model.resnet50((32, 32, 3), include_top=True,
                             flavor="keras")
    with pytest.raises(libnn.FormatError, match=r"conv1\.bias"):
        m.load_safetensors(path, names="torchvision_resnet")


def test_notop_skips_the_classifier(exported):
    _, path = exported
    m = libnn.Model.resnet50((32, 32, 3), include_top=False,
                             flavor="torchvision")
    m.load_safetensors(path, names="torchvision_resnet")
    assert m.output_layer.name == "conv5_block3_out"


def test_round_trip_libnn_names(exported, tmp_path):
    _, path = exported
    a = libnn.Model.resnet50((32, 32, 3), flavor="torchvision")
    a.load_safetensors(path, names="torchvision_resnet")
    out = str(tmp_path / "libnn.safetensors")
    a.save_safetensors(out)
    b = libnn.Model.resnet50((32, 32, 3), flavor="torchvision", seed=99)
    b.load_safetensors(out)
    for la, lb in zip(a.layers, b.layers):
        for wa, wb in zip(la.weights, lb.weights):
            np.testing.assert_array_equal(wa, wb)
