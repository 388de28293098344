"""Every model shape the engine must handle, quantized with the default preset and checked with numbers.

Op counts come from onnxruntime's own optimised graph (what really runs); SQNR bounds are against the
float model on the calibration inputs.
"""

from __future__ import annotations

import json

import pytest

from core.jobs.spec import QuantizeOptions

pytestmark = pytest.mark.slow


def quantize(path, out, **kw):
    from core.engine.pipeline import quantize as run

    kw.setdefault("samples", 16)
    return run(QuantizeOptions(model=str(path), out_dir=str(out), **kw))


def quantized_ops(out) -> list[str]:
    graphs = json.loads((out / "graph.json").read_text())
    return [n["op"] for n in graphs["quantized"]["nodes"]]


@pytest.mark.parametrize(
    ("name", "fused"),
    [
        ("conv_bn_relu", {"QLinearConv": 2}),
        ("residual_add", {"QLinearConv": 2, "QLinearAdd": 1}),
        ("linear", {"QGemm": 2}),
        ("depthwise", {"QLinearConv": 3}),
        ("conv1d", {"QLinearConv": 4, "QGemm": 1, "QLinearGlobalAveragePool": 1}),
        ("bn_after_relu", {"QLinearConv": 3}),
        # SiLU -> x * sigmoid(x): two SiLUs and the excite gate each run as QLinearSigmoid + QLinearMul
        (
            "se_silu",
            {"QLinearConv": 4, "QLinearSigmoid": 3, "QLinearMul": 3, "QLinearGlobalAveragePool": 1},
        ),
        (
            "se_silu_inplace",
            {"QLinearConv": 4, "QLinearSigmoid": 3, "QLinearMul": 3, "QLinearGlobalAveragePool": 1},
        ),
        ("concat", {"QLinearConv": 4, "QLinearConcat": 1, "MaxPool": 1}),
        ("shuffle", {"QLinearConv": 3, "QLinearConcat": 1, "Split": 1}),
        ("upsample_concat", {"QLinearConv": 3, "QLinearConcat": 1, "Resize": 1}),
        # the pooled ReLU stem keeps its own range beside the signed conv: its ReLU still folds
        ("dense_concat", {"QLinearConv": 5, "QLinearConcat": 1, "MaxPool": 1}),
        # x.mean((2, 3)) without keepdim: ReduceMean stays float, GlobalAveragePool + flatten do not
        ("spatial_mean", {"QLinearConv": 1, "QLinearGlobalAveragePool": 1, "QGemm": 1}),
        # amax over time is a ReduceMax on uint8; the concat after it stays int8 too
        ("max_over_time", {"QLinearConv": 2, "ReduceMax": 2, "QLinearConcat": 1, "QGemm": 1}),
        # groups=16, 32 outputs: the input repeated (Expand on uint8) and a true depthwise conv
        ("channel_multiplier", {"QLinearConv": 3, "Expand": 1}),
        # both average pools run as depthwise convs with 1/k weights (QLinearAveragePool is slow); the
        # clamp folds into its conv's Q, alpha=2 relabels a scale and the add is a QLinearAdd
        ("avg_pools", {"QLinearConv": 4, "QLinearAdd": 1, "QGemm": 1, "QLinearAveragePool": 0}),
        # the stem's BN is not folded (the shortcut reads the stem): it runs as a depthwise conv
        ("preact", {"QLinearConv": 4, "QLinearAdd": 1}),
        # each left-only zero pad keeps its input's range and becomes the padding of the conv reading it
        ("causal_conv", {"QLinearConv": 3, "QLinearAdd": 2, "Pad": 0}),
        # a roll over two axes: a Split on uint8 and a QLinearConcat per axis, nothing left in float
        ("shifted_windows", {"QLinearConv": 2, "QLinearConcat": 2, "Split": 2}),
        # the ReLU moves onto the concat's inputs and folds into their convs (the average pool is one)
        (
            "relu_after_concat",
            {"QLinearConv": 3, "QLinearConcat": 1, "QLinearGlobalAveragePool": 1, "Relu": 0},
        ),
        # relu(w)[i] / (sum + eps) from a parameter: constants, so the multiplies and the divide only
        # relabel scales
        ("weighted_fusion", {"QLinearConv": 3, "QLinearAdd": 1, "QLinearMul": 0, "Div": 0, "ReduceSum": 0}),
        # per-channel scales and shifts fold into the conv or linear before them
        ("channel_scale", {"QLinearConv": 2, "QGemm": 2, "QLinearAdd": 2, "QLinearMul": 0}),
        # maximum(x, 0.2 x) is a LeakyReLU; clamp(min=0) a ReLU that folds into its conv's Q
        ("tf_activations", {"QLinearConv": 3, "QLinearLeakyRelu": 1, "Max": 0}),
        # string padding becomes numbers (the BN folds), F.relu6 a clamp that folds into its conv's Q,
        # and each zero pad, also the one on the model input, the padding of the conv reading it
        ("keras_same", {"QLinearConv": 3, "Pad": 0, "Clip": 0}),
        # transposed convs as sub-pixel convs: a conv per output phase, then a shuffle of uint8 values in
        # two transposes (ONNX Runtime has no integer ConvTranspose, and its DepthToSpace is slower); the
        # BN folds and each ReLU moves before the shuffle
        ("generator", {"QLinearConv": 3, "Transpose": 4, "DepthToSpace": 0, "ConvTranspose": 0, "Relu": 0}),
        ("upsampler_1d", {"QLinearConv": 2, "QLinearLeakyRelu": 1, "ConvTranspose": 0}),
    ],
)
def test_default_preset_fuses_every_compute_op(zoo_pt2, tmp_path, name, fused):
    report = quantize(zoo_pt2(name), tmp_path)
    m = report["metrics"]
    counts = m["ort_op_counts"]
    for op, n in fused.items():
        assert counts.get(op, 0) == n, (op, counts)
    for float_op in (
        "Conv",
        "Gemm",
        "MatMul",
        "BatchNormalization",
        "Sigmoid",
        "Mul",
        "Concat",
        "ReduceMean",
    ):
        assert counts.get(float_op, 0) == 0, counts
    assert report["unfused"] == []
    assert m["output_sqnr_db"] >= 30, m
    assert m["onnx_parity_sqnr_db"] >= 35, m
    assert m["onnx_checker"] == "ok"
    assert "batch_norm" not in quantized_ops(tmp_path)
    assert all(layer["quantized"] for layer in report["layers"])


@pytest.mark.parametrize("name", ["hardswish", "hardswish_inplace"])
def test_hardswish_runs_entirely_in_int8(zoo_pt2, tmp_path, name):
    # ONNX Runtime has no integer HardSigmoid (onnxruntime's quantizer leaves it float): as
    # clamp(x + 3, 0, 6) * (1/6) it is a QLinearAdd, its clamp folded, the 1/6 a relabelled scale.
    # The in-place forms (hardswish_, hardsigmoid_) were left whole and ran in float
    report = quantize(zoo_pt2(name), tmp_path)
    counts = report["metrics"]["ort_op_counts"]
    assert counts.get("QLinearMul") == 3 and counts.get("QLinearAdd") == 3, counts
    for float_op in ("HardSigmoid", "HardSwish", "Mul", "Add", "Clip", "DequantizeLinear"):
        assert counts.get(float_op, 0) == (1 if float_op == "DequantizeLinear" else 0), counts
    assert report["unfused"] == []
    assert report["metrics"]["output_sqnr_db"] >= 30
    assert report["metrics"]["onnx_parity_sqnr_db"] >= 35


def test_concat_of_relu_and_signed_inputs_keeps_every_conv_int8(zoo_pt2, tmp_path):
    # one shared range for a ReLU skip and a transposed conv's signed output would go negative, stop
    # the ReLU folding into its conv's Q and leave that conv in float
    report = quantize(zoo_pt2("transpose_concat"), tmp_path)
    counts = report["metrics"]["ort_op_counts"]
    assert counts.get("QLinearConv") == 4 and counts.get("QLinearConcat") == 1, counts
    assert counts.get("FusedConv", 0) == 0 and counts.get("Conv", 0) == 0, counts
    # onnxruntime has no integer ConvTranspose kernel (its own quantizer leaves it float): ours runs as
    # a 1x1 conv with four outputs per channel, then the shuffle as two transposes of uint8 values
    assert counts.get("ConvTranspose", 0) == 0 and counts.get("Transpose") == 2, counts
    assert report["unfused"] == [], report["unfused"]
    assert report["metrics"]["onnx_parity_sqnr_db"] >= 35


def test_single_slope_prelu_runs_as_int8_leaky_relu(zoo_pt2, tmp_path):
    # ONNX Runtime has no integer PRelu; one slope is LeakyReLU (QLinearLeakyRelu), a slope per channel
    # is not and stays float, as in onnxruntime's own quantizer
    report = quantize(zoo_pt2("prelu"), tmp_path)
    m = report["metrics"]
    counts = m["ort_op_counts"]
    assert counts.get("QLinearConv") == 3 and counts.get("QLinearLeakyRelu") == 1, counts
    assert [u["op"] for u in report["unfused"]] == ["PRelu"], report["unfused"]
    assert m["output_sqnr_db"] >= 30 and m["onnx_parity_sqnr_db"] >= 35, m


def test_activations_after_a_float_norm_run_in_int8(zoo_pt2, tmp_path):
    # instance norm has no integer kernel; the ReLU after it gets its own range and vanishes into the
    # Q that feeds the next conv (through its reflect pad, which pads uint8), as in onnxruntime's own
    # quantizer; a SiLU after the other norm runs as QLinearSigmoid + QLinearMul
    report = quantize(zoo_pt2("norm_relu"), tmp_path)
    counts = report["metrics"]["ort_op_counts"]
    assert counts.get("QLinearConv") == 3 and counts.get("Relu", 0) == 0, counts
    assert counts.get("QLinearSigmoid") == 1 and counts.get("QLinearMul") == 1, counts
    assert [u["op"] for u in report["unfused"]] == ["InstanceNormalization"] * 2, report["unfused"]
    assert report["metrics"]["onnx_parity_sqnr_db"] >= 35


def test_weights_shared_by_two_convs_fold_once(tmp_path):
    # torchao's conv-BN fold wrote the folded weight back where both calls read it, folding it twice
    # (7 dB); the space-to-depth stem rewrite then named two initializers alike and the file was invalid
    import numpy as np
    import onnx
    import torch

    from tests.models import Siamese, randomize_bn

    torch.manual_seed(0)
    model = randomize_bn(Siamese())
    ex = (torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32))
    dyn = tuple({0: torch.export.Dim("batch", min=1, max=4096)} for _ in ex)
    torch.export.save(torch.export.export(model, ex, dynamic_shapes=dyn), str(tmp_path / "siamese.pt2"))
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "calib.npz", **{k: rng.standard_normal((16, 3, 32, 32)).astype(np.float32) for k in "ab"}
    )
    report = quantize(tmp_path / "siamese.pt2", tmp_path / "out", calib=str(tmp_path / "calib.npz"))
    m = report["metrics"]
    assert m["output_sqnr_db"] >= 30 and m["onnx_parity_sqnr_db"] >= 35, m
    assert m["ort_op_counts"].get("QLinearConv") == 2 and m["ort_op_counts"].get("SpaceToDepth") == 2, m
    graph = onnx.load(str(tmp_path / "out" / "model.int8.onnx")).graph
    assert [i.dims for i in graph.initializer if len(i.dims) == 4] == [[16, 12, 2, 2]]  # stored once


def test_submodules_named_like_graph_module_attributes(tmp_path):
    # torch sets each parameter on the GraphModule by its path: `meta` (here a metadata branch beside an
    # image CNN) and `graph` are taken there, and loading failed with "nonexistent attribute 0 of meta"
    import numpy as np
    import torch
    from torch import nn

    class ImageAndMeta(nn.Module):
        def __init__(self):
            super().__init__()
            self.graph = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU())
            self.meta = nn.Sequential(nn.Linear(6, 16), nn.ReLU())
            self.head = nn.Linear(32, 3)

        def forward(self, img, meta):
            return self.head(torch.cat([self.graph(img).mean((2, 3)), self.meta(meta)], 1))

    torch.manual_seed(0)
    ex = (torch.randn(2, 3, 16, 16), torch.randn(2, 6))
    dyn = tuple({0: torch.export.Dim("batch", min=1, max=4096)} for _ in ex)
    ep = torch.export.export(ImageAndMeta().eval(), ex, dynamic_shapes=dyn)
    torch.export.save(ep, str(tmp_path / "model.pt2"))
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "calib.npz",
        img=rng.standard_normal((16, 3, 16, 16)).astype(np.float32),
        meta=rng.standard_normal((16, 6)).astype(np.float32),
    )
    report = quantize(tmp_path / "model.pt2", tmp_path / "out", calib=str(tmp_path / "calib.npz"))
    m = report["metrics"]
    assert m["output_sqnr_db"] >= 30 and m["onnx_parity_sqnr_db"] >= 35, m
    assert m["ort_op_counts"].get("QGemm") == 2 and m["ort_op_counts"].get("QLinearConv") == 1, m


def test_model_that_returns_its_input(tmp_path):
    # torch's exporter wrote Identity(x) -> x for the echoed input, and the file failed ONNX's check
    import numpy as np
    import onnxruntime as ort
    import torch
    from torch import nn

    class Echo(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

        def forward(self, x):
            return self.mlp(x), x

    ex = (torch.randn(2, 16),)
    dyn = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    torch.export.save(torch.export.export(Echo().eval(), ex, dynamic_shapes=dyn), str(tmp_path / "echo.pt2"))
    report = quantize(tmp_path / "echo.pt2", tmp_path / "out")
    assert report["metrics"]["ort_op_counts"].get("QGemm") == 2, report["metrics"]
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    sess = ort.InferenceSession(str(tmp_path / "out" / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    prediction, echoed = sess.run(None, {sess.get_inputs()[0].name: x})
    assert prediction.shape == (3, 4) and np.array_equal(echoed, x)


def test_float64_layers_stay_float_and_the_rest_quantizes(tmp_path):
    # quantize ops take float32 only: convert crashed on a float64 layer ("Expecting input to have
    # dtype torch.float32"), with every preset
    import torch
    from torch import nn

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(10, 32), nn.Linear(32, 32).double(), nn.Linear(32, 3)

        def forward(self, x):
            return self.c(self.b(torch.relu(self.a(x)).double()).float())

    ex = (torch.randn(2, 10),)
    dyn = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    torch.export.save(torch.export.export(Mixed().eval(), ex, dynamic_shapes=dyn), str(tmp_path / "m.pt2"))
    for preset in ("onnxruntime", "x86-inductor"):
        report = quantize(tmp_path / "m.pt2", tmp_path / preset, preset=preset)
        assert any("1 layer(s) compute in torch.float64" in w for w in report["warnings"]), report["warnings"]
        assert report["metrics"]["output_sqnr_db"] >= 30, report["metrics"]
        if preset == "onnxruntime":
            ops = report["metrics"]["ort_op_counts"]
            assert ops.get("QGemm") == 2 and ops.get("Gemm") == 1, ops  # the float64 one stays Gemm


def _small_cnn():
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


def _quantize_on_noise(model, shape, tmp_path, rows=16, **kw):
    """`model` exported at batch 2, then quantized on a file of `rows` standard-normal inputs of `shape`."""
    import numpy as np
    import torch

    path = _save(model, (torch.randn(2, *shape),), tmp_path / "model.pt2")
    np.save(tmp_path / "c.npy", np.random.default_rng(0).standard_normal((rows, *shape)).astype(np.float32))
    return quantize(path, tmp_path / "out", calib=str(tmp_path / "c.npy"), **kw)


def _save(model, inputs, path, dynamic=None):
    import torch

    dynamic = dynamic or tuple({0: torch.export.Dim("batch", min=1, max=4096)} for _ in inputs)
    torch.export.save(torch.export.export(model.eval(), inputs, dynamic_shapes=dynamic), str(path))
    return path


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_model_is_quantized_from_a_float32_copy(tmp_path, dtype):
    # every layer stayed float with float16; with bfloat16 the ONNX file was invalid (no bf16 Conv)
    import numpy as np
    import torch

    half = getattr(torch, dtype)
    path = _save(_small_cnn().to(half), (torch.randn(2, 3, 32, 32, dtype=half),), tmp_path / "m.pt2")
    np.save(
        tmp_path / "calib.npy", np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float16)
    )
    report = quantize(path, tmp_path / "out", calib=str(tmp_path / "calib.npy"))
    assert any(f"computes in {dtype}" in w for w in report["warnings"]), report["warnings"]
    m = report["metrics"]
    assert m["onnx_checker"] == "ok" and m["output_sqnr_db"] >= 30 and m["onnx_parity_sqnr_db"] >= 35, m
    assert m["ort_op_counts"].get("QLinearConv") == 2 and m["ort_op_counts"].get("QGemm") == 1, m


def test_no_grad_region_and_list_input_are_quantized(tmp_path):
    # `with torch.no_grad()` in forward exports as a higher-order op around a submodule that no
    # quantizer looked into: the model came out all float (SQNR 120 dB), with no warning. A forward
    # taking a list of tensors crashed calibration ("takes 2 positional arguments but 3 were given").
    import torch
    from torch import nn

    class Pyramid(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.fc = _small_cnn(), _small_cnn(), nn.Linear(20, 4)

        def forward(self, xs):
            with torch.no_grad():
                return self.fc(torch.relu(torch.cat([self.a(xs[0]), self.b(xs[1])], 1)))

    inputs = ([torch.randn(2, 3, 32, 32), torch.randn(2, 3, 16, 16)],)
    dim = torch.export.Dim("batch", min=1, max=4096)
    path = _save(Pyramid(), inputs, tmp_path / "m.pt2", ([{0: dim}, {0: dim}],))
    report = quantize(path, tmp_path / "out")
    m = report["metrics"]
    assert m["ort_op_counts"].get("QLinearConv") == 4 and m["ort_op_counts"].get("QGemm") == 3, m
    assert 30 <= m["output_sqnr_db"] < 100 and m["onnx_parity_sqnr_db"] >= 35, m


def test_autocast_regions_in_forward(tmp_path):
    # a bfloat16 autocast region wrote a bfloat16 Gemm that ONNX Runtime cannot run (the run crashed);
    # a region that turns autocast off (numerically touchy code does) hid its layers from the quantizer
    import torch
    from torch import nn

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = _small_cnn(), nn.Linear(10, 4)

        def forward(self, x):
            with torch.autocast("cpu", enabled=False):
                y = self.body(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                z = self.head(y)
            return z.float()

    report = quantize(_save(Mixed(), (torch.randn(2, 3, 32, 32),), tmp_path / "m.pt2"), tmp_path / "out")
    m = report["metrics"]
    assert m["onnx_checker"] == "ok" and m["onnx_parity_sqnr_db"] >= 35 and m["output_sqnr_db"] >= 30, m
    assert m["ort_op_counts"].get("QLinearConv") == 2 and m["ort_op_counts"].get("QGemm") == 1, m
    assert any("compute in torch.bfloat16" in w for w in report["warnings"]), report["warnings"]


def test_timestep_embedding_keeps_its_sine_argument_float(tmp_path):
    # a diffusion model's sin(t * f) with t up to 1000: the multiply ran as a QLinearMul, its 8-bit
    # output moved the argument by up to 2 radians and this model read 12.7 dB (onnxruntime's quantizer
    # does the same: 12.7 on the sweep's version); sin and cos run in float anyway, so their argument
    # stays float now
    import numpy as np
    import torch
    from torch import nn

    class Denoiser(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.gn, self.c2 = (
                nn.Conv2d(3, 32, 3, 1, 1),
                nn.GroupNorm(8, 32),
                nn.Conv2d(32, 3, 3, 1, 1),
            )
            self.te = nn.Sequential(nn.Linear(32, 64), nn.SiLU(), nn.Linear(64, 32))

        def forward(self, x, t):
            a = t.float()[:, None] * torch.exp(-torch.arange(16, dtype=torch.float32) * (9.21 / 16))[None]
            emb = self.te(torch.cat([a.sin(), a.cos()], 1))
            return self.c2(nn.functional.silu(self.gn(self.c1(x))) + emb[:, :, None, None])

    torch.manual_seed(0)
    path = _save(Denoiser(), (torch.randn(2, 3, 16, 16), torch.randint(0, 1000, (2,))), tmp_path / "d.pt2")
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((16, 3, 16, 16)).astype(np.float32), rng.integers(0, 1000, 16)
    np.savez(tmp_path / "c.npz", x=x, t=t)
    m = quantize(path, tmp_path / "out", calib=str(tmp_path / "c.npz"))["metrics"]
    assert m["output_sqnr_db"] >= 28 and m["onnx_parity_sqnr_db"] >= 35, m
    assert m["ort_op_counts"].get("QLinearConv") == 2 and m["ort_op_counts"].get("QGemm") == 2, m


def test_capsule_squash_keeps_its_last_multiply_float(tmp_path):
    # squash(s) = |s|^2 / (1 + |s|^2) * s / |s|: the multiply feeds a divide and a norm that run in
    # float; rounding it to 8 bits only lost precision (a capsule net on the sweep: 29.0 dB, 34.4 with
    # it float, onnxruntime's quantizer 31.3). This one reads 53.7 dB with it int8, 59.3 float.
    import numpy as np
    import torch
    from torch import nn

    def squash(s):
        n2 = (s * s).sum(-1, keepdim=True)
        return n2 / (1 + n2) * s / torch.sqrt(n2 + 1e-8)

    class Capsules(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.prim = nn.Conv2d(1, 32, 5, 1, 2), nn.Conv2d(32, 64, 5, 2, 2)
            self.digit = nn.Linear(8, 10 * 16)

        def forward(self, x):
            u = self.prim(torch.relu(self.c1(x)))
            u = squash(u.reshape(x.shape[0], 8, -1).transpose(1, 2))
            v = self.digit(u).reshape(x.shape[0], -1, 10, 16).mean(1)
            return torch.linalg.vector_norm(squash(v), dim=-1)

    torch.manual_seed(0)
    path = _save(Capsules(), (torch.randn(2, 1, 16, 16),), tmp_path / "c.pt2")
    x = np.random.default_rng(0).standard_normal((32, 1, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "c.npz", x=x)
    m = quantize(path, tmp_path / "out", calib=str(tmp_path / "c.npz"))["metrics"]
    ops = m["ort_op_counts"]
    assert ops.get("QLinearConv") == 2 and ops.get("QGemm") == 1, ops
    # the squares and the first squash's multiply stay int8; the second squash's multiply is float
    assert ops.get("QLinearMul") == 3 and ops.get("Mul") == 1, ops
    assert m["output_sqnr_db"] >= 57 and m["onnx_parity_sqnr_db"] >= 35, m


def test_flipped_channels_stay_int8(tmp_path):
    # a normalizing flow reverses its channels between couplings: x.flip(1) ran as DQ -> Slice -> Split
    # in float and each half was quantized again (RealNVP: 36.7 dB, 37.9 with the flip in int8)
    import torch
    from torch import nn

    class Flow(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, 1, 1)
            self.nets = nn.ModuleList(
                nn.Sequential(nn.Conv2d(4, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 8, 3, 1, 1))
                for _ in range(3)
            )

        def forward(self, x):
            x = self.stem(x)
            for net in self.nets:
                x1, x2 = x.chunk(2, 1)
                s, t = net(x1).chunk(2, 1)
                x = torch.cat([x1, x2 * torch.exp(torch.tanh(s)) + t], 1).flip(1)
            return x

    torch.manual_seed(0)
    report = _quantize_on_noise(Flow(), (3, 16, 16), tmp_path, rows=32)
    float_ops = {u["op"] for u in report["unfused"]}
    assert not float_ops & {"Slice", "Split"}, report["unfused"]
    assert report["metrics"]["onnx_parity_sqnr_db"] >= 35, report["metrics"]


def test_nothing_to_quantize_says_so(tmp_path):
    import torch
    from torch import nn

    class Normalise(nn.Module):
        def forward(self, x):
            return (x - x.mean(1, keepdim=True)) * 2.0

    report = quantize(_save(Normalise(), (torch.randn(2, 8),), tmp_path / "m.pt2"), tmp_path / "out")
    assert any(w.startswith("nothing in this model was quantized") for w in report["warnings"]), report


def test_complex_numbers_are_refused_before_calibration_unless_onnx_is_off(tmp_path):
    # a Fourier neural operator: the exporter failed only after calibration, with a message about
    # slice_scatter and terminal colour codes in it
    import numpy as np
    import torch
    from torch import nn

    from core.errors import UserError

    class Spectral(nn.Module):
        def __init__(self, c=4, modes=3):
            super().__init__()
            self.modes = modes
            self.w = nn.Parameter(torch.randn(c, c, modes, modes, dtype=torch.cfloat) / c)
            self.skip = nn.Conv2d(c, c, 1)

        def forward(self, x):
            f = torch.fft.rfft2(x)
            low = torch.einsum("bixy,ioxy->boxy", f[:, :, : self.modes, : self.modes], self.w)
            f = torch.nn.functional.pad(low, (0, f.shape[-1] - self.modes, 0, f.shape[-2] - self.modes))
            return torch.relu(torch.fft.irfft2(f, s=x.shape[-2:]) + self.skip(x))

    torch.manual_seed(0)
    path = _save(Spectral(), (torch.randn(2, 4, 8, 8),), tmp_path / "fno.pt2")
    np.save(tmp_path / "c.npy", np.random.default_rng(0).standard_normal((16, 4, 8, 8)).astype(np.float32))
    with pytest.raises(UserError, match="complex numbers .*--no-onnx") as err:
        quantize(path, tmp_path / "out", calib=str(tmp_path / "c.npy"))
    assert "\x1b" not in str(err.value)
    report = quantize(path, tmp_path / "pt2", calib=str(tmp_path / "c.npy"), export_onnx=False)
    assert report["metrics"]["output_sqnr_db"] >= 25, report["metrics"]
    assert (tmp_path / "pt2" / "model.int8.pt2").is_file()


def test_an_fft_convolution_the_exporter_can_write_is_quantized(tmp_path):
    # Hyena's long convolution: rfft, a complex product and irfft export as DFT ops; refusing every
    # complex value turned away a model that runs at 0.77x of onnxruntime's quantizer, 7 dB better
    import torch
    from torch import nn

    class LongConv(nn.Module):
        def __init__(self, d=16, length=32):
            super().__init__()
            self.inp, self.out = nn.Linear(d, d), nn.Linear(d, d)
            self.kernel = nn.Parameter(torch.randn(d, length) / length)

        def forward(self, x):  # [B, L, d]
            u = self.inp(x).transpose(1, 2)
            n = 2 * u.shape[-1]
            f = torch.fft.rfft(u, n=n) * torch.fft.rfft(self.kernel, n=n)
            y = torch.fft.irfft(f, n=n)[..., : u.shape[-1]]
            return self.out((y + u).transpose(1, 2))

    torch.manual_seed(0)
    report = _quantize_on_noise(LongConv(), (32, 16), tmp_path)
    m = report["metrics"]
    assert m["onnx_output_sqnr_db"] >= 30 and m["onnx_parity_sqnr_db"] >= 35, m
    assert m["ort_op_counts"].get("QGemm", 0) == 2, m["ort_op_counts"]


def test_each_output_gets_its_own_sqnr(tmp_path):
    import torch
    from torch import nn

    from core.engine.analysis import each_output_sqnr

    class TwoHeads(nn.Module):
        """A detector's heads: a [0, 1] heatmap beside box sizes a hundred times larger."""

        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
            self.heat = nn.Conv2d(16, 2, 1)
            self.size = nn.Conv2d(16, 2, 1)

        def forward(self, x):
            f = self.body(x)
            return {"heat": torch.sigmoid(self.heat(f)), "size": 100 * self.size(f)}

    torch.manual_seed(0)
    report = _quantize_on_noise(TwoHeads(), (3, 16, 16), tmp_path, export_onnx=False)
    m = report["metrics"]
    each = m["outputs_sqnr_db"]
    assert list(each) == ["heat", "size"] and min(each.values()) >= 25, m
    # the whole-model figure is the large output's: the heatmap's own error does not show in it
    assert abs(m["output_sqnr_db"] - each["size"]) < 0.5, m
    assert "SQNR of each output" in (tmp_path / "out" / "report.html").read_text()
    a, b = torch.ones(3), torch.ones(2)
    assert list(each_output_sqnr((a, b), (a, b))) == ["output 0", "output 1"]


def test_a_minus_infinity_mask_leaves_the_analysis_finite(tmp_path):
    # Mistral's sliding window, written as log(triu(tril(ones))): scores + mask holds -inf, which made
    # the histogram's range infinite (the run crashed after calibration) and every layer sum NaN
    import math

    import torch
    from torch import nn

    class WindowAttention(nn.Module):
        def __init__(self, d=32, window=4):
            super().__init__()
            self.qkv, self.out, self.window = nn.Linear(d, 3 * d), nn.Linear(d, d), window

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            n = x.shape[1]
            mask = torch.log(torch.triu(torch.tril(torch.ones(n, n)), diagonal=-self.window))
            w = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]) + mask
            return self.out(torch.softmax(w, dim=-1) @ v)

    torch.manual_seed(0)
    report = _quantize_on_noise(WindowAttention(), (16, 32), tmp_path)
    m = report["metrics"]
    assert m["output_sqnr_db"] >= 30 and m["onnx_parity_sqnr_db"] >= 35, m
    masked = [x for x in report["layers"] if x["op"] == "add"]
    assert masked and all(math.isfinite(x["sqnr_db"]) for x in masked), masked


def test_layers_inside_torch_cond_are_named_as_float(tmp_path):
    import torch
    from torch import nn

    class Switch(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = _small_cnn(), _small_cnn()
            self.register_buffer("flag", torch.tensor(True))

        def forward(self, x):
            return torch.cond(self.flag, lambda x: self.a(x), lambda x: self.b(x), (x,))

    report = quantize(_save(Switch(), (torch.randn(2, 3, 32, 32),), tmp_path / "m.pt2"), tmp_path / "out")
    assert any("torch.cond regions stay float" in w for w in report["warnings"]), report["warnings"]


@pytest.mark.parametrize("preset", ["onnxruntime", "xnnpack"])
def test_pruned_channels_keep_their_bias(tmp_path, preset):
    # all-zero weights give a weight scale of ~1e-7: a bias of 3 was some 1e10 int32 steps and wrapped
    # around to -2^31 (-0.6 dB); the weight range is widened until the bias fits. A float bias (xnnpack)
    # is no escape: ONNX Runtime makes it int32 when it fuses the Gemm
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    with torch.no_grad():  # in the last layer: bias correction cannot make up for them there
        model[2].weight[:2] = 0  # pruned channels, their bias kept
        model[2].bias[:2] = 3.0
    ex = (torch.randn(2, 8),)
    dyn = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    torch.export.save(torch.export.export(model, ex, dynamic_shapes=dyn), str(tmp_path / "pruned.pt2"))
    np.save(
        tmp_path / "calib.npy", np.random.default_rng(0).standard_normal((32, 8)).astype(np.float32) * 0.05
    )
    calib = str(tmp_path / "calib.npy")
    m = quantize(tmp_path / "pruned.pt2", tmp_path / "out", calib=calib, samples=32, preset=preset)["metrics"]
    assert m["output_sqnr_db"] >= 30 and m["onnx_parity_sqnr_db"] >= 35, m
    assert m["ort_op_counts"].get("QGemm") == 2, m


def test_integer_index_arithmetic_is_not_observed(tmp_path):
    # ids + per-field offsets into one shared table (DeepFM, DLRM): the int64 add got an observer and
    # calibration crashed ("histogram_cpu" not implemented for 'Long')
    import numpy as np
    import torch
    from torch import nn

    fields = (10, 20, 30, 40)

    class FieldEmbeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("offsets", torch.tensor([0, 10, 30, 60]))
            self.emb = nn.Embedding(sum(fields), 8)
            self.mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))

        def forward(self, ids):
            return self.mlp(self.emb(ids + self.offsets).flatten(1))

    torch.manual_seed(0)
    path = _save(FieldEmbeddings(), (torch.randint(0, 10, (2, 4)),), tmp_path / "m.pt2")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "ids.npy", np.stack([rng.integers(0, f, 64) for f in fields], 1))
    m = quantize(path, tmp_path / "out", calib=str(tmp_path / "ids.npy"))["metrics"]
    assert m["ort_op_counts"].get("QGemm") == 2, m["ort_op_counts"]
    assert m["output_sqnr_db"] >= 30 and m["onnx_parity_sqnr_db"] >= 35, m


def test_float_times_integer_positions_is_not_observed(tmp_path):
    # BLOOM's ALiBi: float slopes times int64 positions (a mask's cumsum); the multiply's int64 input
    # got an observer and calibration crashed ("histogram_cpu" not implemented for 'Long')
    import numpy as np
    import torch
    from torch import nn

    class Alibi(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("slopes", torch.tensor([0.5, 0.25]))
            self.q, self.fc = nn.Linear(8, 8), nn.Linear(16, 4)

        def forward(self, x):
            pos = (x > 0).long().cumsum(-1)
            bias = self.slopes[:, None] * pos[:, None, :]
            return self.fc((self.q(x)[:, None, :] + bias).flatten(1))

    torch.manual_seed(0)
    path = _save(Alibi(), (torch.randn(2, 8),), tmp_path / "m.pt2")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32))
    m = quantize(path, tmp_path / "out", calib=str(tmp_path / "x.npy"))["metrics"]
    assert m["ort_op_counts"].get("QGemm") == 2, m["ort_op_counts"]
    assert m["output_sqnr_db"] >= 30, m


def test_class_ids_beside_scores_are_not_counted_as_signal(tmp_path):
    # the argmax beside the scores was counted as signal: one flipped id and the report read 3.8 dB
    import numpy as np
    import torch
    from torch import nn

    class ScoresAndIds(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU()
            )
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            p = self.fc(self.features(x).mean((2, 3))).softmax(-1)
            return p, p.argmax(-1)

    torch.manual_seed(0)
    ex = (torch.randn(2, 3, 32, 32),)
    dyn = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    torch.export.save(
        torch.export.export(ScoresAndIds().eval(), ex, dynamic_shapes=dyn), str(tmp_path / "m.pt2")
    )
    np.save(
        tmp_path / "calib.npy", np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    )
    m = quantize(tmp_path / "m.pt2", tmp_path / "out", calib=str(tmp_path / "calib.npy"))["metrics"]
    assert m["output_sqnr_db"] >= 35 and m["onnx_parity_sqnr_db"] >= 35, m


def test_torch_encoder_layer_runs_its_linears_in_int8(zoo_pt2, tmp_path):
    # nn.MultiheadAttention exports as one scaled_dot_product_attention op, which stays float (ONNX
    # Runtime's float attention beat int8 matmuls + softmax on a ViT); every Linear is a QGemm
    report = quantize(zoo_pt2("torch_encoder"), tmp_path)
    m = report["metrics"]
    counts = m["ort_op_counts"]
    assert counts.get("QGemm") == 4, counts  # in_proj, out_proj, two feed-forward
    assert counts.get("Gemm", 0) == 0 and counts.get("QLinearMatMul", 0) == 0, counts
    # opset 20 has Gelu: one kernel instead of Div, Erf, Add, Mul, Mul each between their own DQs
    assert counts.get("Gelu") == 1 and counts.get("Erf", 0) == 0, counts
    assert m["output_sqnr_db"] >= 25, m
    assert m["onnx_parity_sqnr_db"] >= 35, m


def test_bn_on_the_model_input_stays_float(zoo_pt2, tmp_path):
    # as a depthwise 1x1 conv over 3 channels it ran slower than onnxruntime's quantizer's float BN,
    # and added a rounding of the raw input
    report = quantize(zoo_pt2("input_norm"), tmp_path)
    counts = report["metrics"]["ort_op_counts"]
    assert counts.get("BatchNormalization") == 1 and counts.get("QLinearConv") == 2, counts
    assert report["unfused"] == [] and report["metrics"]["output_sqnr_db"] >= 30


def test_bn_after_conv_is_folded_and_lone_bn_still_quantizes(zoo_pt2, tmp_path):
    report = quantize(zoo_pt2("conv1d"), tmp_path)
    ops = quantized_ops(tmp_path)
    assert "batch_norm" not in ops and "_native_batch_norm_legit_no_training" not in ops
    # conv1, conv2, conv3 and the depthwise conv that replaced the BN after ReLU
    assert ops.count("conv1d") == 4
    assert report["metrics"]["output_sqnr_db"] >= 30


def test_resnet18_shape_meets_accuracy_bounds(zoo_pt2, tmp_path):
    report = quantize(zoo_pt2("resnet18"), tmp_path, samples=32)
    m = report["metrics"]
    assert m["output_sqnr_db"] >= 30, m
    assert m["onnx_parity_sqnr_db"] >= 35, m
    counts = m["ort_op_counts"]
    assert counts.get("QLinearConv") == 20 and counts.get("QLinearAdd") == 8 and counts.get("QGemm") == 1
    assert counts.get("SpaceToDepth") == 1  # the 7x7 stride-2 stem over 3 channels (onnx_passes)
    assert m["size_int8_bytes"] < 0.3 * m["size_float_bytes"]
    assert len(report["layers"]) == 29  # 20 conv + 8 add + fc
    # every output channel of every weight uses the full int8 range (no scale floor wasting levels)
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(tmp_path / "model.int8.onnx"))
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    weights = [
        consts[n.input[0]]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and consts.get(n.input[0]) is not None
        and consts[n.input[0]].dtype == np.int8
    ]
    assert len(weights) == 21
    for w in weights:
        per_channel = np.abs(w.astype(np.int32)).reshape(w.shape[0], -1).max(axis=1)
        assert (per_channel == 127).all(), per_channel.min()


def test_transformer_block_with_dynamic_preset(zoo_pt2, tmp_path):
    report = quantize(zoo_pt2("encoder"), tmp_path, preset="x86-inductor-dynamic")
    ops = quantized_ops(tmp_path)
    assert ops.count("choose_qparams") == 4  # one per Linear input: qkv, proj, ff1, ff2
    assert report["metrics"]["output_sqnr_db"] >= 30
    assert report["metrics"]["onnx_parity_sqnr_db"] >= 35
    assert {"layer_norm", "softmax", "matmul"} <= set(ops)


def test_run_directory_is_complete(zoo_pt2, tmp_path):
    report = quantize(zoo_pt2("residual_add"), tmp_path)
    # 16 samples: the candidate ranges were judged on 8 the choice was not calibrated on
    assert report["calibration"]["candidates"]["held_out"], report["calibration"]
    assert report["calibration"]["candidates"]["samples"] == 8
    for name in report["artifacts"].values():
        assert (tmp_path / name).stat().st_size > 0, name
    assert not list(tmp_path.glob(".*.part*"))
    on_disk = json.loads((tmp_path / "report.json").read_text())
    for key in (
        "schema",
        "run_id",
        "model",
        "preset",
        "options",
        "device",
        "calibration",
        "artifacts",
        "metrics",
        "layers",
        "warnings",
    ):
        assert key in on_disk
    layer = on_disk["layers"][0]
    for key in (
        "name",
        "op",
        "module",
        "quantized",
        "weight_scale",
        "act_scale",
        "act_zero_point",
        "act_min",
        "act_max",
        "sqnr_db",
    ):
        assert key in layer
    assert on_disk["calibration"]["synthetic"] is True
    assert any("SYNTHETIC" in w for w in on_disk["warnings"])
    import numpy as np

    tensors = np.load(tmp_path / "tensors.npz")
    assert any(k.startswith("act_hist::") for k in tensors.files)
    assert tensors["out_float"].shape == tensors["out_int8"].shape
    # conv `a` has its ReLU fused: its histogram shows the quantized (post-ReLU) tensor, never negative
    assert tensors["act_edges::a"][0] >= 0 and tensors["act_hist::a"].sum() > 0


def test_int8_pt2_reloads_and_matches(zoo_pt2, tmp_path):
    import torch

    report = quantize(zoo_pt2("conv_bn_relu"), tmp_path)
    ep = torch.export.load(str(tmp_path / "model.int8.pt2"))
    x = torch.randn(3, 3, 32, 32)
    out = ep.module()(x)
    assert out.shape == (3, 8, 32, 32)
    assert report["model"]["inputs"][0]["shape"] == ["N", 3, 32, 32]
    # only what the graph reads: convert_pt2e leaves the float weights beside their int8 copies
    read = {n.name for n in ep.graph.nodes if n.op == "placeholder" and n.users}
    assert all(spec.arg.name in read for spec in ep.graph_signature.input_specs)
    tensors = [*ep.state_dict.values(), *ep.constants.values()]
    assert not any(t.dtype == torch.float32 and t.dim() == 4 for t in tensors), "a float conv weight"
    # two example inputs, not the storage of every calibration sample they were sliced from
    (example,), _ = ep.example_inputs
    assert example.shape[0] == 2 and example.untyped_storage().nbytes() == example.nbytes


def test_keep_float_layer_stays_float(zoo_pt2, tmp_path):
    report = quantize(zoo_pt2("conv_bn_relu"), tmp_path, keep_float=("head",))
    by_name = {layer["name"]: layer for layer in report["layers"]}
    assert by_name["head"]["quantized"] is False and by_name["head"]["kept_float"] is True
    assert by_name["conv"]["quantized"] is True
    kinds = {
        n["label"]: n["kind"] for n in json.loads((tmp_path / "graph.json").read_text())["quantized"]["nodes"]
    }
    assert kinds["head"] == "kept_float"
    assert report["metrics"]["ort_op_counts"].get("Conv") == 1
    assert any("keep-in-float" in u["reason"] or "not quantized" in u["reason"] for u in report["unfused"])


def test_qat_fine_tunes_and_folds(zoo_pt2, tmp_path):
    events = []
    from core.engine.pipeline import quantize as run
    from core.progress import Progress

    report = run(
        QuantizeOptions(model=str(zoo_pt2("conv_bn_relu")), out_dir=str(tmp_path), samples=16, qat_epochs=2),
        Progress(events.append),
    )
    assert report["qat"]["epochs"] == 2 and len(report["qat"]["losses"]) == 2
    assert any("loss" in e for e in events if e["type"] == "progress")
    assert "batch_norm" not in quantized_ops(tmp_path)
    assert report["metrics"]["output_sqnr_db"] >= 25
    assert report["metrics"]["ort_op_counts"].get("QLinearConv") == 2  # int32 bias derived in QAT too


def test_reference_representation_pt2(zoo_pt2, tmp_path):
    import torch

    report = quantize(zoo_pt2("linear"), tmp_path, reference_representation=True)
    assert report["metrics"]["onnx_parity_sqnr_db"] >= 35
    ep = torch.export.load(str(tmp_path / "model.int8.pt2"))
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    # weights are dequantized by explicit integer arithmetic (clamp, int32 subtract) instead of Q/DQ ops
    assert any("aten.sub.Tensor" in o for o in ops) and any("aten.clamp" in o for o in ops)


@pytest.mark.parametrize("preset", ["x86-inductor", "arm-inductor", "xnnpack"])
def test_other_static_presets(zoo_pt2, tmp_path, preset):
    report = quantize(zoo_pt2("residual_add"), tmp_path, preset=preset, export_onnx=False)
    assert report["metrics"]["output_sqnr_db"] >= 25
    assert sum(layer["quantized"] for layer in report["layers"]) >= 2


def test_tensorrt_preset_is_symmetric_int8(zoo_pt2, tmp_path):
    import onnx
    from onnx import numpy_helper

    quantize(zoo_pt2("residual_add"), tmp_path, preset="tensorrt")
    model = onnx.load(str(tmp_path / "model.int8.onnx"))
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        for a in n.attribute:
            if a.name == "value" and n.op_type == "Constant":
                consts[n.output[0]] = numpy_helper.to_array(a.t)
    zps = [
        consts[n.input[2]]
        for n in model.graph.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2
    ]
    assert zps, "no Q/DQ found"
    assert all(z.dtype.name == "int8" for z in zps)
    assert all((z == 0).all() for z in zps)
    conv_inputs = {i for n in model.graph.node if n.op_type in ("Conv", "Add") for i in n.input}
    dq_outputs = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    for n in model.graph.node:
        if n.op_type == "Conv":
            assert n.input[0] in dq_outputs and n.input[1] in dq_outputs
    assert conv_inputs


def test_transformer_block_default_preset_fuses_every_linear(zoo_pt2, tmp_path):
    """Linear on (batch, tokens, features) runs as QGemm with an int32 bias, not MatMul + float Add."""
    report = quantize(zoo_pt2("encoder"), tmp_path)
    counts = report["metrics"]["ort_op_counts"]
    assert counts.get("QGemm") == 4, counts  # qkv, proj, ff1, ff2
    assert counts.get("MatMulIntegerToFloat", 0) == 0 and counts.get("Gemm", 0) == 0
    assert report["metrics"]["output_sqnr_db"] >= 30
    assert report["metrics"]["onnx_parity_sqnr_db"] >= 35
    assert {u["op"] for u in report["unfused"]} >= {"LayerNormalization", "Softmax"}  # no integer kernels


def test_transformer_residual_stream_stays_float(tmp_path):
    # pre-norm ViT: the class token's row is ~100x smaller than the patch rows; rounded on their
    # shared 8-bit scale it lost most of its precision and every LayerNorm magnified that. The sums
    # stay float now, the linears int8: 18.8 -> 22.2 dB here, with the same 9 QGemm
    import numpy as np
    import torch
    from torch import nn

    class ViT(nn.Module):
        def __init__(self, d=96):
            super().__init__()
            self.patch = nn.Conv2d(3, d, 8, 8)
            self.cls = nn.Parameter(0.02 * torch.randn(1, 1, d))
            self.pos = nn.Parameter(0.02 * torch.randn(1, 17, d))
            layer = nn.TransformerEncoderLayer(d, 4, 2 * d, 0.0, "gelu", batch_first=True, norm_first=True)
            self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.ln, self.fc = nn.LayerNorm(d), nn.Linear(d, 10)

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos
            return self.fc(self.ln(self.enc(t))[:, 0])

    torch.manual_seed(0)
    path = _save(ViT(), (torch.randn(2, 3, 32, 32),), tmp_path / "vit.pt2")
    np.save(
        tmp_path / "calib.npy", np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    )
    report = quantize(path, tmp_path / "out", calib=str(tmp_path / "calib.npy"))
    m = report["metrics"]
    assert m["ort_op_counts"].get("QLinearAdd", 0) == 0 and m["ort_op_counts"].get("QGemm") == 9, m
    assert m["output_sqnr_db"] >= 21.5 and m["onnx_parity_sqnr_db"] >= 35, m
    residual = [u for u in report["unfused"] if "residual sum" in u["reason"]]
    assert len(residual) >= 3, report["unfused"]
    # written as Sum, so ONNX Runtime keeps them out of its slow SkipLayerNormalization kernel
    assert "SkipLayerNormalization" not in m["ort_op_counts"], m


def test_residual_stream_through_regrouped_tokens_stays_float(tmp_path):
    # TimeSformer: cat(cls, patches) + pos is sliced, regrouped by frame and offset by a time table
    # before its first LayerNorm; the sums were quantized and the class token's row lost its precision
    # (17.5 dB, onnxruntime's quantizer 13.6; 24.1 with them float)
    import numpy as np
    import torch
    from torch import nn

    class DividedST(nn.Module):
        def __init__(self, d=64, t=4):
            super().__init__()
            self.t = t
            self.patch = nn.Conv2d(3, d, 8, 8)
            self.cls = nn.Parameter(0.02 * torch.randn(1, 1, d))
            self.pos = nn.Parameter(0.02 * torch.randn(1, 17, d))
            self.time = nn.Parameter(0.02 * torch.randn(1, t, d))
            self.ln1, self.fc1 = nn.LayerNorm(d), nn.Linear(d, d)
            self.ln, self.fc = nn.LayerNorm(d), nn.Linear(d, 10)

        def forward(self, x):  # x: [B, 3, T, 32, 32]
            B, C, T, H, W = x.shape
            t = self.patch(x.transpose(1, 2).reshape(B * T, C, H, W)).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos
            cls, t = t[:B, :1], t[:, 1:]
            t = t.reshape(B, T, 16, -1).transpose(1, 2).reshape(B * 16, T, -1) + self.time
            t = torch.cat([cls, t.reshape(B, 16 * T, -1)], 1)
            t = t + self.fc1(self.ln1(t))
            return self.fc(self.ln(t)[:, 0])

    torch.manual_seed(0)
    path = _save(DividedST(), (torch.randn(2, 3, 4, 32, 32),), tmp_path / "st.pt2")
    np.save(
        tmp_path / "calib.npy",
        np.random.default_rng(0).standard_normal((16, 3, 4, 32, 32)).astype(np.float32),
    )
    report = quantize(path, tmp_path / "out", calib=str(tmp_path / "calib.npy"))
    m = report["metrics"]
    assert m["ort_op_counts"].get("QLinearAdd", 0) == 0 and m["onnx_output_sqnr_db"] >= 42, m  # 40.8 as adds
    residual = [u for u in report["unfused"] if "residual sum" in u["reason"]]
    assert len(residual) >= 3, report["unfused"]


def test_residual_stream_before_a_written_out_rms_norm_stays_float(tmp_path):
    # LLaMA code writes its RMSNorm out: x * rsqrt(x.pow(2).mean(-1) + eps) * w. Its residual sums
    # were QLinearAdds, each read back by that float norm: 35.5 -> 39.0 dB here
    import torch
    from torch import nn

    class RMSNorm(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.w = nn.Parameter(1 + 0.1 * torch.randn(d))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w

    class Decoder(nn.Module):
        def __init__(self, d=64):
            super().__init__()
            self.emb = nn.Embedding(100, d)
            self.norms = nn.ModuleList(RMSNorm(d) for _ in range(3))
            self.up = nn.ModuleList(nn.Linear(d, 2 * d, bias=False) for _ in range(2))
            self.down = nn.ModuleList(nn.Linear(2 * d, d, bias=False) for _ in range(2))
            self.head = nn.Linear(d, 100, bias=False)

        def forward(self, ids):
            x = self.emb(ids)
            for norm, up, down in zip(self.norms, self.up, self.down):
                x = x + down(torch.nn.functional.silu(up(norm(x))))
            return self.head(self.norms[2](x))

    torch.manual_seed(0)
    path = _save(Decoder(), (torch.randint(0, 100, (2, 16)),), tmp_path / "lm.pt2")
    report = quantize(path, tmp_path / "out")
    m = report["metrics"]
    assert m["ort_op_counts"].get("QLinearAdd", 0) == 0 and m["ort_op_counts"].get("QGemm") == 5, m
    assert len([u for u in report["unfused"] if "residual sum" in u["reason"]]) == 2, report["unfused"]
    assert m["output_sqnr_db"] >= 30 and m["onnx_parity_sqnr_db"] >= 35, m


def test_attention_mask_and_cast_first_norms_keep_attention_float(tmp_path):
    # HF's T5: scores + position bias + (1 - mask) * finfo.min, read only by softmax. As a QLinearAdd
    # one 8-bit range spanned -3e38 and the scores, which all rounded to zero (8.7 dB in both
    # quantizers on the sweep, 32.0 with the adds float). Its norm casts first (x.to(float32)), which
    # hid the norm from the residual-stream rule and quantized the residual sums
    import numpy as np
    import torch
    from torch import nn

    class T5Norm(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.weight = nn.Parameter(1 + 0.1 * torch.randn(d))

        def forward(self, x):
            return self.weight * (x * torch.rsqrt(x.to(torch.float32).pow(2).mean(-1, keepdim=True) + 1e-6))

    class Encoder(nn.Module):
        def __init__(self, d=64, heads=4, length=16):
            super().__init__()
            self.h = heads
            self.emb = nn.Embedding(100, d)
            self.bias = nn.Parameter(torch.randn(1, heads, length, length))
            self.norms = nn.ModuleList(T5Norm(d) for _ in range(5))
            self.qkv = nn.ModuleList(nn.Linear(d, 3 * d, bias=False) for _ in range(2))
            self.o = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(2))
            self.ff = nn.ModuleList(
                nn.Sequential(nn.Linear(d, 2 * d, bias=False), nn.ReLU(), nn.Linear(2 * d, d, bias=False))
                for _ in range(2)
            )

        def forward(self, ids, attention_mask):
            x = self.emb(ids)
            b, n, d = x.shape
            mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
            for i in range(2):
                q, k, v = self.qkv[i](self.norms[2 * i](x)).view(b, n, 3, self.h, -1).permute(2, 0, 3, 1, 4)
                scores = q @ k.transpose(-1, -2) + (self.bias + mask)
                w = torch.softmax(scores.float(), -1).type_as(scores)
                x = x + self.o[i]((w @ v).transpose(1, 2).reshape(b, n, d))
                x = x + self.ff[i](self.norms[2 * i + 1](x))
            return self.norms[4](x)

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 100, (32, 16))
    lengths = rng.integers(4, 17, 32)
    mask = (np.arange(16)[None] < lengths[:, None]).astype(np.int64)
    np.savez(tmp_path / "c.npz", ids=ids * mask, attention_mask=mask)
    ex = (torch.from_numpy(ids[:2] * mask[:2]), torch.from_numpy(mask[:2]))
    path = _save(Encoder(), ex, tmp_path / "t5.pt2")
    report = quantize(path, tmp_path / "out", calib=str(tmp_path / "c.npz"), samples=32)
    m = report["metrics"]
    assert m["ort_op_counts"].get("QLinearAdd", 0) == 0 and m["ort_op_counts"].get("QGemm") == 8, m
    assert m["output_sqnr_db"] >= 25 and m["onnx_parity_sqnr_db"] >= 35, m


def test_a_minus_inf_mask_reshaped_and_concatenated_before_softmax_stays_float(tmp_path):
    # CCNet's criss-cross attention adds -inf on the diagonal of the column scores, then views,
    # permutes and concatenates them with the row scores before softmax. As a QLinearAdd the -inf
    # input got an observer range of zero width and rounded to 0: the mask vanished silently
    import torch
    from torch import nn

    class CrissCross(nn.Module):
        def __init__(self, c=16):
            super().__init__()
            self.stem = nn.Conv2d(3, c, 3, padding=1)
            self.qk = nn.Conv2d(c, c // 2, 1)  # one conv for q and k: the diagonal dominates unmasked
            self.v = nn.Conv2d(c, c, 1)

        def forward(self, x):
            x = self.stem(x)
            b, _, h, w = x.shape
            q = self.qk(x)
            v = self.v(x)
            q_h = q.permute(0, 3, 1, 2).reshape(b * w, -1, h).permute(0, 2, 1)
            k_h = q.permute(0, 3, 1, 2).reshape(b * w, -1, h)
            q_w = q.permute(0, 2, 1, 3).reshape(b * h, -1, w).permute(0, 2, 1)
            k_w = q.permute(0, 2, 1, 3).reshape(b * h, -1, w)
            inf = -torch.diag(torch.tensor(float("inf")).repeat(h), 0).unsqueeze(0).repeat(b * w, 1, 1)
            e_h = (torch.bmm(q_h, k_h) + inf).view(b, w, h, h).permute(0, 2, 1, 3)
            e_w = torch.bmm(q_w, k_w).view(b, h, w, w)
            att = torch.softmax(torch.cat([e_h, e_w], 3), 3)
            a_h = att[:, :, :, :h].permute(0, 2, 1, 3).reshape(b * w, h, h)
            a_w = att[:, :, :, h:].reshape(b * h, w, w)
            v_h = v.permute(0, 3, 1, 2).reshape(b * w, -1, h)
            v_w = v.permute(0, 2, 1, 3).reshape(b * h, -1, w)
            o_h = torch.bmm(v_h, a_h.permute(0, 2, 1)).view(b, w, -1, h).permute(0, 2, 3, 1)
            o_w = torch.bmm(v_w, a_w.permute(0, 2, 1)).view(b, h, -1, w).permute(0, 2, 1, 3)
            return o_h + o_w

    torch.manual_seed(0)
    m = _quantize_on_noise(CrissCross(), (3, 12, 12), tmp_path)["metrics"]
    assert m["ort_op_counts"].get("QLinearAdd") == 1, m  # o_h + o_w only
    assert m["output_sqnr_db"] >= 25 and m["onnx_parity_sqnr_db"] >= 35, m


def test_a_linear_shared_by_batch_norms_folds_each_call(tmp_path):
    # TabNet shares its GLU linears between steps, each call with its own BatchNorm1d; torchao folds a
    # shared weight once and drops the other calls' norms (14.7 dB with nothing quantized at all)
    import torch
    from torch import nn

    from tests.models import randomize_bn

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 32, bias=False)
            self.bns = nn.ModuleList(nn.BatchNorm1d(32) for _ in range(3))
            self.head = nn.Linear(32, 4)

        def forward(self, x):
            for bn in self.bns:
                x = torch.relu(bn(self.fc(x[:, :16])))
            return self.head(x)

    torch.manual_seed(0)
    m = _quantize_on_noise(randomize_bn(Shared()), (16,), tmp_path, rows=64, samples=64)["metrics"]
    assert m["ort_op_counts"].get("QGemm") == 4, m
    assert m["output_sqnr_db"] >= 30 and m["onnx_parity_sqnr_db"] >= 35, m


def _cond_conv():
    """CondConv: expert kernels mixed per sample and run as one conv grouped over batch x channels."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class CondConv(nn.Module):
        def __init__(self, c=8, experts=3):
            super().__init__()
            self.stem = nn.Conv2d(3, c, 3, 1, 1)
            self.route = nn.Linear(c, experts)
            self.experts = nn.Parameter(torch.randn(experts, c * 9) / 9)
            self.biases = nn.Parameter(0.1 * torch.randn(experts, c))
            self.head = nn.Conv2d(c, 4, 1)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            b, c, h, w = x.shape
            r = torch.sigmoid(self.route(x.mean((2, 3))))
            weight = (r @ self.experts).view(b * c, 1, 3, 3)
            bias = (r @ self.biases).view(b * c)
            y = F.conv2d(x.reshape(1, b * c, h, w), weight, bias, 1, 1, 1, b * c).view(b, c, h, w)
            return self.head(torch.relu(y))

    return CondConv().eval()


def test_kernels_computed_from_the_input_stay_float(tmp_path):
    # Observed as a weight, CondConv's computed bias got an int32 Q the ONNX checker refused, and at a
    # dynamic batch the per-channel observer saw the calibration batch's channels ("size of tensor a
    # (256) must match")
    import numpy as np
    import torch

    torch.manual_seed(0)
    torch.export.save(
        torch.export.export(_cond_conv(), (torch.randn(1, 3, 12, 12),)), str(tmp_path / "cc.pt2")
    )
    np.save(tmp_path / "c.npy", np.random.default_rng(0).standard_normal((16, 3, 12, 12)).astype(np.float32))
    m = quantize(tmp_path / "cc.pt2", tmp_path / "out", calib=str(tmp_path / "c.npy"))["metrics"]
    assert m["ort_op_counts"].get("QLinearConv", 0) >= 2, m
    assert m["output_sqnr_db"] >= 30 and m["onnx_parity_sqnr_db"] >= 35, m


def test_a_group_count_that_follows_the_batch_takes_a_fixed_batch(tmp_path):
    # CondConv run as one conv grouped over batch x channels, saved with a dynamic batch: torch's ONNX
    # exporter cannot write the symbolic group count ("Failed to convert the exported program")
    import torch

    torch.manual_seed(0)
    report = _quantize_on_noise(_cond_conv(), (3, 12, 12), tmp_path)
    assert any("group count follows the batch" in w for w in report["warnings"]), report["warnings"]
    assert report["metrics"]["onnx_parity_sqnr_db"] >= 35, report["metrics"]


def test_local_response_norm_is_not_called_a_residual_sum(tmp_path):
    # the diagnosis took any Add read by a Pow for an RMSNorm's residual sum; LRN's (k + a s) ** 0.75
    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.LocalResponseNorm(5), nn.Conv2d(8, 4, 3))
    torch.manual_seed(0)
    report = _quantize_on_noise(model, (3, 16, 16), tmp_path)
    assert report["unfused"] and not [u for u in report["unfused"] if "residual" in u["reason"]], report[
        "unfused"
    ]
    assert report["metrics"]["ort_op_counts"].get("QLinearConv") == 2, report["metrics"]


def test_mish_multiplies_in_int8_without_the_slow_softplus(tmp_path):
    # ONNX Runtime's Softplus kernel is scalar (36 ms on 64 x 112 x 112, 2.4 ms as relu + log1p(exp(-|x|)));
    # CSPDarknet with Mish ran at 1.04x of onnxruntime's quantizer, 0.53x with both changes
    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Mish(), nn.Conv2d(8, 8, 3), nn.Mish(inplace=True))
    torch.manual_seed(0)
    m = _quantize_on_noise(model, (3, 16, 16), tmp_path)["metrics"]
    ops = m["ort_op_counts"]
    assert "Softplus" not in ops and "Mish" not in ops and ops.get("QLinearMul") == 2, ops
    assert m["output_sqnr_db"] >= 30 and m["onnx_parity_sqnr_db"] >= 35, m


def test_captured_views_accept_any_memory_layout():
    """A GPU kernel can return another layout than the one export saw; the captured graph must not care."""
    import torch

    from core.engine import graph_passes

    class Flatten(torch.nn.Module):
        def forward(self, x):
            return x.view(x.shape[0], -1) * 2

    x = torch.randn(2, 3, 4, 5)
    gm = torch.export.export(Flatten(), (x,)).module()
    channels_last = x.contiguous(memory_format=torch.channels_last)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        gm(channels_last)
    assert graph_passes.views_as_reshapes(gm) == 1
    torch.testing.assert_close(gm(channels_last), x.reshape(2, -1) * 2)


def test_slower_int8_says_why():
    # timing-free: the message a slower int8 file gets (Conv3d runs 2x slower in int8 on ONNX Runtime)
    import torch

    from core.engine.pipeline import SLOWER_THAN_FLOAT, _slower_than_float

    def graph(module, x):
        return torch.export.export(module.eval(), (x,)).module()

    metrics = {"speedup": 0.56, "latency_int8_ms": 9.45, "latency_float_ms": 5.32}
    metrics |= {"size_float_bytes": 4000, "size_int8_bytes": 1000}
    assert metrics["speedup"] < SLOWER_THAN_FLOAT
    conv3d = graph(torch.nn.Conv3d(3, 8, 3), torch.randn(2, 3, 4, 8, 8))
    msg = _slower_than_float(metrics, conv3d)
    assert "0.56x" in msg and "9.45 vs 5.32 ms" in msg and "3-D convolutions" in msg
    assert "4.0x smaller" in msg
    conv2d = graph(torch.nn.Conv2d(3, 8, 3), torch.randn(2, 3, 8, 8))
    tiny = _slower_than_float(metrics | {"size_int8_bytes": 9000}, conv2d)
    assert "3-D" not in tiny and "smaller" not in tiny and "keep it in float" in tiny


def test_writes_into_slices_reach_the_quantized_model(tmp_path):
    # YOLO's decode writes y[..., 0:2] = ... into a sigmoid's output; with an observer between the
    # slice and the in-place copy, the write was lost: 0.1 dB, the boxes were raw sigmoids
    import numpy as np
    import torch
    from torch import nn

    class Decode(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, padding=1)
            self.register_buffer("grid", torch.arange(8.0).repeat(8, 1).unsqueeze(-1).repeat(1, 1, 2))

        def forward(self, x):
            y = self.conv(x).permute(0, 2, 3, 1).sigmoid()
            y[..., 0:2] = (y[..., 0:2] * 2 - 0.5 + self.grid) * 8
            y[..., 4] = y[..., 4] * 3
            return y.flatten(1)

    torch.manual_seed(0)
    path = _save(Decode(), (torch.rand(2, 3, 8, 8),), tmp_path / "decode.pt2")
    np.save(tmp_path / "c.npy", np.random.default_rng(0).random((16, 3, 8, 8)).astype(np.float32))
    report = quantize(path, tmp_path / "out", calib=str(tmp_path / "c.npy"))
    m = report["metrics"]
    assert m["output_sqnr_db"] >= 30 and m["onnx_output_sqnr_db"] >= 30, m


def test_a_causal_mask_filled_in_place_exports(tmp_path):
    # HF's _make_causal_mask: torch.full(...).masked_fill_(...) on a constant; folding left the
    # in-place op on a buffer two constants shared, and the int8 ONNX export failed (OPT, Phi, Qwen2)
    import torch
    from torch import nn

    class Causal(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(16, 48)

        def forward(self, x):
            n = x.shape[1]
            mask = torch.full((n, n), torch.finfo(x.dtype).min)
            cond = torch.arange(n)
            mask.masked_fill_(cond < (cond + 1).view(n, 1), 0)
            q, k, v = self.qkv(x).chunk(3, -1)
            return ((q @ k.transpose(1, 2)) / 4 + mask[None]).softmax(-1) @ v

    torch.manual_seed(0)
    report = _quantize_on_noise(Causal(), (8, 16), tmp_path)
    m = report["metrics"]
    assert m["onnx_output_sqnr_db"] >= 25 and m["onnx_parity_sqnr_db"] >= 35, m


def test_matrices_times_column_vectors_stay_float(tmp_path):
    # an LRU's per-state kernels [N, L, L] times [B, N, L, 1]: ONNX Runtime's QLinearMatMul ran one
    # tiny product per matrix, 2.26x of onnxruntime's quantizer, which keeps the MatMul float
    import torch
    from torch import nn

    class Kernels(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(16, 4)
            self.kernel = nn.Parameter(torch.randn(4, 16, 16) / 4)
            self.out = nn.Linear(4, 8)

        def forward(self, x):  # [B, L, 16]
            u = self.inp(x).transpose(1, 2).unsqueeze(-1)  # [B, N, L, 1]
            return self.out((self.kernel @ u).squeeze(-1).transpose(1, 2))

    torch.manual_seed(0)
    report = _quantize_on_noise(Kernels(), (16, 16), tmp_path)
    counts = report["metrics"]["ort_op_counts"]
    assert counts.get("QGemm", 0) + counts.get("MatMulInteger", 0) >= 2 and "QLinearMatMul" not in counts, (
        counts
    )
    assert report["metrics"]["onnx_output_sqnr_db"] >= 30, report["metrics"]


def test_a_view_taken_before_a_write_and_read_after_keeps_the_write():
    # eager semantics: flat aliases y, so it sees the write; a slice_scatter would leave it stale
    import torch

    from core.engine.loading import _functional_view_writes

    class Early(torch.nn.Module):
        def forward(self, x):
            y = x.sigmoid()
            flat = y.view(-1)
            y[:, 0:2] = 0.0 * y[:, 0:2] + 5
            return flat * 1

    gm, x = torch.export.export(Early(), (torch.randn(2, 4),)).module(), torch.randn(2, 4)
    assert _functional_view_writes(gm) == 0
    assert torch.equal(gm(x), Early()(x))


def test_a_wide_linear_over_few_inputs_stays_float(tmp_path):
    # ONNX Runtime's int8 linear over K < 16 inputs lost to its float MatMul (1.3-4.7x at K <= 8); a
    # dynamic conv's mm(attention[B, 4], experts[4, N]) made the model 1.9x of onnxruntime's quantizer.
    # A narrow one stays int8 (the small test models' Linear(8, 16) and the like)
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4096), nn.ReLU(), nn.Linear(4096, 64), nn.ReLU(), nn.Linear(64, 8))
    report = _quantize_on_noise(model, (4,), tmp_path)
    counts = report["metrics"]["ort_op_counts"]
    assert counts.get("QGemm", 0) == 2 and "QLinearMatMul" not in counts, counts
    (kept,) = report["unfused"]
    assert kept["op"] in ("Gemm", "MatMul") and "from 4 inputs to 4096 outputs" in kept["reason"], kept
    assert report["metrics"]["onnx_output_sqnr_db"] >= 35, report["metrics"]


def test_a_narrow_input_concatenated_with_a_wide_one_keeps_its_own_range(tmp_path):
    # an EGNN layer: node features (-4..4) concatenated with messages summed over 24 neighbours
    # (-4..45) and also read by the residual add. Sharing the concatenation's range stretched the
    # features' to the sums' and the residual stream lost 8 dB against onnxruntime's quantizer
    import numpy as np
    import torch
    from torch import nn

    class Messages(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(16, 32)
            self.msg = nn.ModuleList(nn.Sequential(nn.Linear(32, 32), nn.ReLU()) for _ in range(2))
            self.node = nn.ModuleList(nn.Linear(64, 32) for _ in range(2))

        def forward(self, x, adj):  # [B, N, 16], [B, N, N]
            h = self.inp(x)
            for msg, node in zip(self.msg, self.node):
                h = h + node(torch.cat([h, adj @ msg(h)], -1)) / 8
            return h

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ex = (torch.randn(2, 24, 16), torch.ones(2, 24, 24))
    path = _save(Messages(), ex, tmp_path / "messages.pt2")
    np.savez(
        tmp_path / "c.npz",
        x=rng.standard_normal((16, 24, 16)).astype(np.float32),
        adj=(rng.random((16, 24, 24)) < 0.8).astype(np.float32),
    )
    report = quantize(path, tmp_path / "out", calib=str(tmp_path / "c.npz"))
    assert report["metrics"]["onnx_output_sqnr_db"] >= 32, report["metrics"]  # 28.4 with one range


def test_sliding_window_keys_move_as_uint8(tmp_path):
    # Longformer's keys and values zero-padded and unfolded into 2w + 1 windows per query: the pad,
    # the unfold's Gather and its transposes ran in float on 2w + 1 times the data, 1.10x of
    # onnxruntime's quantizer, which moves them as uint8
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Window(nn.Module):
        def __init__(self, d=32, w=4):
            super().__init__()
            self.w = w
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

        def forward(self, x):  # [B, L, d]
            w = self.w
            k = F.pad(self.k(x), (0, 0, w, w)).unfold(1, 2 * w + 1, 1)  # [B, L, d, 2w + 1]
            v = F.pad(self.v(x), (0, 0, w, w)).unfold(1, 2 * w + 1, 1)
            a = torch.einsum("bld,bldw->blw", self.q(x), k).softmax(-1)
            return self.o(torch.einsum("blw,bldw->bld", a, v))

    torch.manual_seed(0)
    report = _quantize_on_noise(Window(), (16, 32), tmp_path)
    left = {u["op"] for u in report["unfused"]}
    assert not left & {"Pad", "Gather", "Transpose"}, report["unfused"]
    assert report["metrics"]["onnx_output_sqnr_db"] >= 30, report["metrics"]
