"""The image and segmentation-data binding: PNG round trips, the manifest,
the paired flip and the synthetic defects, against numpy. Needs only
numpy."""

import numpy as np
import pytest

import libnn


def test_synthetic_defects_are_deterministic_and_masked():
    x, y, labels = libnn.synthetic_defects(count=12, size=(32, 48), seed=5,
                                           defect_fraction=0.5)
    assert x.shape == (12, 32, 48, 3) and y.shape == (12, 32, 48, 1)
    assert labels.shape == (12,) and (labels > 0).sum() == 6
    assert 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal((y.reshape(12, -1).max(1) > 0),
                                  labels > 0)
    x2, y2, _ = libnn.synthetic_defects(count=12, size=(32, 48), seed=5,
                                        defect_fraction=0.5)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _, _ = libnn.synthetic_defects(count=12, size=(32, 48), seed=6)
    assert not np.array_equal(x, x3)


def test_png_round_trip_and_manifest(tmp_path):
    x, y, labels = libnn.synthetic_defects(count=3, size=24, seed=1,
                                           defect_fraction=1.0,
                                           typed_masks=True)
    lines = ["id,image_path,mask_path"]
    for i in range(3):
        libnn.save_image(tmp_path / f"{i}.png", x[i])
        libnn.save_mask(tmp_path / f"{i}m.png", y[i])
        lines.append(f"{i},{i}.png,{i}m.png")
        back = libnn.load_image(tmp_path / f"{i}.png")
        np.testing.assert_allclose(back, np.round(x[i] * 255) / 255,
                                   atol=1e-6)
        gray = libnn.load_image(tmp_path / f"{i}.png", channels=1)
        assert gray.shape == (24, 24, 1)
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    images, masks = libnn.load_segmentation_manifest(tmp_path / "m.csv",
                                                     size=16, num_classes=5)
    assert images.shape == (3, 16, 16, 3) and masks.shape == (3, 16, 16, 1)
    assert set(np.unique(masks)) <= {0.0} | set(labels.tolist())
    with pytest.raises(libnn.FormatError,
                       match=r"line 2.*class id in \[0, 2\)"):
        libnn.load_segmentation_manifest(tmp_path / "m.csv")
    with pytest.raises(libnn.FileError):
        libnn.load_image(tmp_path / "missing.png")


def test_random_flip_moves_images_and_masks_together():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (10, 4, 5, 3)).astype(np.float32)
    y = (x[..., :1] > 0.5).astype(np.float32)
    x0 = x.copy()
    libnn.random_flip(x, y, "horizontal_and_vertical", seed=3)
    np.testing.assert_array_equal(y, (x[..., :1] > 0.5).astype(np.float32))
    flipped = [not np.array_equal(a, b) for a, b in zip(x, x0)]
    assert any(flipped) and not all(flipped)
    with pytest.raises(ValueError):
        libnn.random_flip(x, y, "diagonal")
