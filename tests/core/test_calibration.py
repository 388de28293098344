"""Calibration readers: image folders (with unreadable files), .npy, .npz, synthetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.engine import calibration as cal
from core.errors import UserError

IMG = [cal.InputSpec("x", (3, 32, 32), torch.float32)]


def make_images(folder, n, size=(48, 40)):
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)
        fmt = ["png", "jpg", "bmp", "webp"][i % 4]
        Image.fromarray(arr).save(folder / ("sub" if i % 2 else "") / f"img{i}.{fmt}")


def test_image_folder_recursive_with_corrupt_file(tmp_path):
    make_images(tmp_path, 8)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    data = cal.load_calibration(str(tmp_path), IMG, samples=100)
    assert len(data) == 8
    assert data.skipped == ["broken.png"]
    assert data.inputs[0].shape == (8, 3, 32, 32)
    # ImageNet normalisation: values leave [0, 1]
    assert data.inputs[0].min() < 0 and data.inputs[0].max() > 1


def test_image_folder_respects_sample_count_and_no_normalisation(tmp_path):
    make_images(tmp_path, 8)
    data = cal.load_calibration(str(tmp_path), IMG, samples=3, normalize="none")
    assert len(data) == 3
    assert float(data.inputs[0].min()) >= 0 and float(data.inputs[0].max()) <= 1


def test_grayscale_model(tmp_path):
    make_images(tmp_path, 2)
    data = cal.load_calibration(
        str(tmp_path), [cal.InputSpec("x", (1, 16, 16), torch.float32)], 10, "0.5/0.25"
    )
    assert data.inputs[0].shape == (2, 1, 16, 16)


def test_custom_normalisation_is_validated():
    with pytest.raises(UserError, match="normalize"):
        cal.parse_normalize("fast")
    assert cal.parse_normalize("0.5,0.5,0.5/0.2,0.2,0.2") == ((0.5,) * 3, (0.2,) * 3)


def test_npz_by_input_name(tmp_path):
    specs = [cal.InputSpec("a", (4,), torch.float32), cal.InputSpec("b", (2, 2), torch.float32)]
    np.savez(tmp_path / "d.npz", a=np.ones((5, 4), np.float32), b=np.ones((5, 2, 2), np.float64))
    data = cal.load_calibration(str(tmp_path / "d.npz"), specs, 3)
    assert [t.shape for t in data.inputs] == [(3, 4), (3, 2, 2)]
    assert data.inputs[1].dtype == torch.float32
    batches = list(data.batches(2))
    assert [b[0].shape[0] for b in batches] == [2, 1]


def test_npz_different_sample_counts(tmp_path):
    specs = [cal.InputSpec("a", (4,), torch.float32), cal.InputSpec("b", (4,), torch.float32)]
    np.savez(tmp_path / "d.npz", a=np.ones((5, 4), np.float32), b=np.ones((4, 4), np.float32))
    with pytest.raises(UserError, match="different sample counts"):
        cal.load_calibration(str(tmp_path / "d.npz"), specs, 10)


def test_synthetic_is_flagged():
    data = cal.load_calibration(None, IMG, 6)
    assert data.synthetic and len(data) == 6


def test_labelled_folder_uses_classes_txt(tmp_path):
    for cls in ("0_cat", "1_dog"):
        make_images(tmp_path / cls, 2)
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    xs, ys, classes = cal.load_labelled_folder(str(tmp_path), IMG, "imagenet")
    assert classes == ["0_cat", "1_dog"] and sorted(set(ys.tolist())) == [0, 1] and len(xs) == 4


def test_non_finite_values_are_refused_with_the_sample(tmp_path):
    # a NaN crashed calibration deep in an observer ("torch.histc: range of [-nan, -nan] is not finite")
    arr = np.random.default_rng(0).standard_normal((6, 3, 32, 32)).astype(np.float32)
    arr[4, 1, 2, 3] = np.nan
    np.save(tmp_path / "d.npy", arr)
    with pytest.raises(UserError, match=r"NaN or infinite values \(sample 4 is the first\)"):
        cal.load_calibration(str(tmp_path / "d.npy"), IMG, samples=100)
    # a sample past --samples is never read, so it does not count
    assert len(cal.load_calibration(str(tmp_path / "d.npy"), IMG, samples=4)) == 4


def test_value_warnings():
    rng = np.random.default_rng(0)
    spec = [cal.InputSpec("x", (64,), torch.float32)]

    def warnings(arr):
        return cal.value_warnings(cal.CalibrationData("t", [torch.from_numpy(arr.astype(np.float32))]), spec)

    normal = rng.standard_normal((32, 64))
    assert warnings(normal) == []
    sparse = np.zeros((32, 64))
    sparse[0, 0] = 1.0  # one-hot style data: the percentile is 0, nothing to compare against
    assert warnings(sparse) == []
    assert "is constant (every value 0)" in warnings(np.zeros((32, 64)))[0]
    spiked = normal.copy()
    spiked[3, 7] = 1e6
    assert "extreme values (up to 1e+06" in warnings(spiked)[0]


def test_npz_keys_are_the_names_in_the_models_forward(tmp_path):
    # torch.export lowercases its placeholders: PaiNN's forward(self, Z, R) asked for z and r
    from core.engine.loading import load_model

    class Atoms(torch.nn.Module):
        def forward(self, Z, R):  # noqa: N803 - the names a user's model has
            return Z * R

    ex = (torch.ones(2, 3), torch.ones(2, 3))
    torch.export.save(torch.export.export(Atoms(), ex), str(tmp_path / "m.pt2"))
    loaded = load_model(str(tmp_path / "m.pt2"))
    assert loaded.input_names == ["Z", "R"]
    np.savez(tmp_path / "d.npz", Z=np.ones((5, 3), np.float32), R=np.ones((5, 3), np.float32))
    specs = cal.input_specs(loaded.example_inputs, loaded.input_names)
    assert len(cal.load_calibration(str(tmp_path / "d.npz"), specs, 5)) == 5
