"""Side by side with onnxruntime's own quantize_static on architectures from the benchmark: in ONNX
Runtime's optimised graphs, ours never leaves more of an op type in float, and is as accurate.

Structure only (latency is `make bench`'s job). Inputs are smaller than the benchmark's to keep this fast.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

pytestmark = pytest.mark.slow

# name -> smaller input shape (without batch)
CASES = {
    "densenet-ish": (3, 96, 96),  # ReLU stem pooled beside signed convs in a concat
    "mobilenetv3-ish": (3, 96, 96),  # hard-swish and hard-sigmoid
    "aspp-ish": (3, 128, 128),  # PReLU, dilated convs, broadcast pooled branch
    "shufflenet-ish": (3, 96, 96),  # chunk, concat, channel shuffle, x.mean((2, 3))
    "yolo-ish": (3, 128, 128),  # C2f, SPPF max-pool chain, upsample + concat, sigmoid head
    "unet-transpose": (3, 64, 64),  # transposed conv beside a ReLU skip
    "tcn": (13, 100),  # dilated conv1d, x.mean(-1)
    "efficientnet-ish": (3, 64, 64),  # SiLU, squeeze-excite
    "convnext-ish": (3, 64, 64),  # depthwise 7x7, channels-last LayerNorm, GELU, layer scale
    "darknet-ish": (3, 96, 96),  # LeakyReLU
    "inception-ish": (3, 96, 96),  # parallel branches, avg-pool branch, concat
    "conformer-conv": (40, 144),  # GLU, depthwise conv1d
    "cbam-ish": (3, 64, 64),  # one MLP called twice, channel amax, pooled output
    "mobilenetv1-dm2": (3, 64, 64),  # depthwise convs with two outputs per channel
    "style-transfer": (3, 64, 64),  # instance norm then ReLU, reflect padding
    "pool-zoo": (3, 64, 64),  # average pools, hard-tanh clamp, ceil-mode max pool
    "text-cnn": (128, 50),  # max over time
    "preact-resnet": (3, 32, 32),  # a shortcut reading a conv output that a BN also reads
    "wavenet": (1, 400),  # causal (left-only) zero pads before dilated conv1d
}


@pytest.mark.parametrize("name", CASES)
def test_no_op_left_in_float_that_onnxruntime_quantizes(tmp_path, name):
    import torch

    from core.engine import onnx_export
    from core.engine.analysis import sqnr_db
    from core.engine.pipeline import quantize
    from core.jobs.spec import QuantizeOptions
    from tests.bench.extra_models import CASES as BENCH
    from tests.bench.onnx_vs_ort import _ort_quantize
    from tests.models import randomize_bn, save_pt2

    shape = CASES[name]
    torch.manual_seed(0)
    save_pt2(randomize_bn(BENCH[name][0]()), shape, tmp_path / "model.pt2")
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((8, *shape)).astype(np.float32)
    np.save(tmp_path / "calib.npy", calib)
    ours = tmp_path / "ours"
    report = quantize(
        QuantizeOptions(
            model=str(tmp_path / "model.pt2"), out_dir=str(ours), calib=str(tmp_path / "calib.npy"), samples=8
        )
    )
    theirs = _ort_quantize(ours / "model.float.onnx", calib, tmp_path)
    unfused_theirs, _ = onnx_export.diagnose_unfused(theirs, tmp_path)

    ours_float = Counter(u["op"] for u in report["unfused"])
    theirs_float = Counter(u["op"] for u in unfused_theirs)
    assert ours_float <= theirs_float, (ours_float, theirs_float)

    x = rng.standard_normal((4, *shape)).astype(np.float32)
    outputs = {}
    for key, path in (
        ("float", ours / "model.float.onnx"),
        ("ours", ours / "model.int8.onnx"),
        ("theirs", theirs),
    ):
        s = onnx_export.session(path)
        outputs[key] = torch.from_numpy(s.run(None, {s.get_inputs()[0].name: x})[0])
    ours_db, theirs_db = (sqnr_db(outputs["float"], outputs[k]) for k in ("ours", "theirs"))
    assert ours_db >= theirs_db - 0.2, (ours_db, theirs_db)
