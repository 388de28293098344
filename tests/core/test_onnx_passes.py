"""Rewrites of the exported ONNX graph: results bit for bit the same in onnxruntime, the ops it runs changed."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.engine import onnx_passes


def qdq_conv(cin: int, h: int, k: int, p: int, stride: int = 2, cout: int = 8) -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv (int8 per-channel weights, int32 bias) -> Q -> DQ, as our exporter writes it."""
    rng = np.random.default_rng(k * 100 + h)
    w = rng.integers(-127, 128, (cout, cin, k, k), dtype=np.int8)
    w_scale = rng.uniform(0.001, 0.01, cout).astype(np.float32)
    x_scale, y_scale = np.float32(0.03), np.float32(0.2)
    bias = rng.integers(-5000, 5000, cout, dtype=np.int32)
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(w_scale, "w_scale"),
        numpy_helper.from_array(np.zeros(cout, np.int8), "w_zp"),
        numpy_helper.from_array(bias, "b"),
        numpy_helper.from_array(w_scale * x_scale, "b_scale"),
        numpy_helper.from_array(np.zeros(cout, np.int32), "b_zp"),
        numpy_helper.from_array(np.array(x_scale), "x_scale"),
        numpy_helper.from_array(np.array(128, np.uint8), "x_zp"),
        numpy_helper.from_array(np.array(y_scale), "y_scale"),
        numpy_helper.from_array(np.array(100, np.uint8), "y_zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xdq"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zp"], ["wdq"], axis=0),
        helper.make_node("DequantizeLinear", ["b", "b_scale", "b_zp"], ["bdq"], axis=0),
        helper.make_node(
            "Conv", ["xdq", "wdq", "bdq"], ["y"], name="stem", strides=[stride] * 2, pads=[p] * 4
        ),
        helper.make_node("QuantizeLinear", ["y", "y_scale", "y_zp"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zp"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "stem",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cin, h, h])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    return onnx.shape_inference.infer_shapes(model)


def run(model: onnx.ModelProto, x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0], [n.op_type for n in model.graph.node]


@pytest.mark.parametrize(
    ("cin", "h", "k", "p", "stride", "rewritten"),
    [
        (3, 16, 7, 3, 2, True),  # the ResNet stem
        (3, 16, 3, 1, 2, True),  # the MobileNet stem
        (1, 12, 4, 1, 2, True),  # an even kernel
        (3, 17, 7, 3, 2, False),  # odd height: no exact space-to-depth
        (3, 16, 3, 0, 2, False),  # output is not half the input
        (8, 16, 7, 3, 2, False),  # enough channels for the plain kernel
        (3, 16, 3, 1, 1, False),  # stride 1
    ],
)
def test_space_to_depth_stem_is_bit_exact(cin, h, k, p, stride, rewritten):
    model = qdq_conv(cin, h, k, p, stride)
    x = np.random.default_rng(1).standard_normal((2, cin, h, h)).astype(np.float32) * 2
    expected, _ = run(model, x)
    assert onnx_passes.space_to_depth_stems(model) == int(rewritten)
    onnx.checker.check_model(model, full_check=True)
    got, ops = run(model, x)
    assert np.array_equal(got, expected)
    assert ("SpaceToDepth" in ops) == rewritten
    assert ops.count("Conv") == 1 and ops.count("DequantizeLinear") == 4  # nothing left behind
    if rewritten:
        conv = next(n for n in model.graph.node if n.op_type == "Conv")
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        assert attrs["strides"] == [1, 1] and attrs["kernel_shape"] == [(k - 1 - p) // 2 - (-p) // 2 + 1] * 2
        assert [i.name for i in model.graph.initializer].count("w") == 0  # the old weights are gone


def scaled_relabel(out_scale: float, op: str = "Mul") -> onnx.ModelProto:
    """x -> Q(s) -> DQ -> Mul(1/6) or Div(6) -> Q(out_scale) -> DQ: hard-sigmoid's last step as the
    engine exports it, or a hand-written one's."""
    s = np.float32(6 / 255)
    inits = [
        numpy_helper.from_array(np.array(s), "s"),
        numpy_helper.from_array(np.array(out_scale, np.float32), "s6"),
        numpy_helper.from_array(np.array(0, np.uint8), "zp"),
        numpy_helper.from_array(np.array(1 / 6 if op == "Mul" else 6, np.float32), "c"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xdq"]),
        helper.make_node(op, ["xdq", "c"], ["y"]),
        helper.make_node("QuantizeLinear", ["y", "s6", "zp"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "s6", "zp"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "relabel",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


@pytest.mark.parametrize("op", ["Mul", "Div"])
def test_multiply_that_only_relabels_a_scale_is_folded(op):
    x = np.random.default_rng(0).uniform(-1, 7, (64, 8)).astype(np.float32)
    model = scaled_relabel(float(np.float32(6 / 255)) / 6, op)
    ref, _ = run(model, x)
    assert onnx_passes.fold_scaling_muls(model) == 1
    got, ops = run(model, x)
    assert ops == ["QuantizeLinear", "DequantizeLinear"]
    np.testing.assert_array_equal(got, ref)


def test_multiply_with_another_output_scale_is_kept():
    # Q(s/5) after a multiply by 1/6 changes the integers: folding it would be wrong
    model = scaled_relabel(float(np.float32(6 / 255)) / 5)
    assert onnx_passes.fold_scaling_muls(model) == 0
    assert [n.op_type for n in model.graph.node].count("Mul") == 1


def qdq_pad(mode: str, zero_point: int, value: float | None = None) -> onnx.ModelProto:
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "s"),
        numpy_helper.from_array(np.array(zero_point, np.uint8), "z"),
        numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "pads"),
    ]
    pad_inputs = ["xd", "pads"]
    if value is not None:
        inits.append(numpy_helper.from_array(np.array(value, np.float32), "fill"))
        pad_inputs.append("fill")
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xd"]),
        helper.make_node("Pad", pad_inputs, ["p"], mode=mode),
        helper.make_node("QuantizeLinear", ["p", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "pad",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 4, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
        value_info=[helper.make_tensor_value_info("p", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


@pytest.mark.parametrize(
    ("mode", "zero_point", "value", "rewritten"),
    [
        ("reflect", 3, None, True),
        ("edge", 0, None, True),
        ("constant", 7, None, True),  # zeros: the uint8 pad writes the zero point
        ("constant", 7, 0.0, True),
        ("constant", 7, 0.5, False),
    ],
)
def test_pad_that_copies_values_pads_the_integers(mode, zero_point, value, rewritten):
    # ONNX Runtime keeps DQ -> Pad -> Q in float; padding uint8 directly copies the same integers
    model = qdq_pad(mode, zero_point, value)
    x = np.random.default_rng(0).integers(0, 256, (1, 4, 6, 6)).astype(np.uint8)
    want, _ = run(model, x)
    assert onnx_passes.pads_on_integers(model) == int(rewritten)
    got, ops = run(model, x)
    assert np.array_equal(got, want)
    assert len(ops) == (2 if rewritten else 4) and ops[0] == ("Pad" if rewritten else "DequantizeLinear")


def padded_conv(value: float | None) -> onnx.ModelProto:
    """qdq_conv with a zero Pad in its input's range (two rows on top, one column on the right, as a
    causal or TF-style 'same' padding writes) between the input and the conv."""
    model = qdq_conv(4, 12, 3, 1, stride=1)
    g = model.graph
    g.initializer.append(numpy_helper.from_array(np.array([0, 0, 2, 0, 0, 0, 0, 1], np.int64), "pads"))
    pad_inputs = ["xdq", "pads"]
    if value is not None:
        g.initializer.append(numpy_helper.from_array(np.array(value, np.float32), "fill"))
        pad_inputs.append("fill")
    conv = next(n for n in g.node if n.op_type == "Conv")
    conv.input[0] = "pdq"
    at = list(g.node).index(conv)
    for node in reversed(
        [
            helper.make_node("Pad", pad_inputs, ["p"]),
            helper.make_node("QuantizeLinear", ["p", "x_scale", "x_zp"], ["pq"]),
            helper.make_node("DequantizeLinear", ["pq", "x_scale", "x_zp"], ["pdq"]),
        ]
    ):
        g.node.insert(at, node)
    del g.value_info[:]
    g.output[0].CopyFrom(helper.make_tensor_value_info("out", TensorProto.FLOAT, None))
    return onnx.shape_inference.infer_shapes(model)


@pytest.mark.parametrize(("value", "folded"), [(None, True), (0.0, True), (0.5, False)])
def test_zero_pad_read_by_a_conv_becomes_its_padding(value, folded):
    # between Q and DQ the runtime cannot fold a Pad into the Conv and copies the tensor (WaveNet)
    model = padded_conv(value)
    x = np.random.default_rng(0).standard_normal((2, 4, 12, 12)).astype(np.float32)
    want, _ = run(model, x)
    onnx_passes.pads_on_integers(model)
    assert onnx_passes.pads_into_convs(model) == int(folded)
    got, ops = run(model, x)
    assert np.array_equal(got, want)
    assert ("Pad" in ops) != folded
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    pads = next(helper.get_attribute_value(a) for a in conv.attribute if a.name == "pads")
    assert pads == ([3, 1, 1, 2] if folded else [1, 1, 1, 1])
    onnx.checker.check_model(model, full_check=True)


def test_casts_to_the_same_type_leave_loop_bodies(tmp_path):
    # an EmbeddingBag exports as a Loop over the bags whose body casts int64 to int64; ONNX Runtime
    # keeps such casts inside a Loop body, where they ran once per bag (a DLRM: 1.09x of onnxruntime's
    # quantizer, 0.99x without them)
    import torch

    from core.engine.onnx_export import export_onnx

    class Bags(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bag = torch.nn.EmbeddingBag(50, 8, mode="sum")

        def forward(self, ids):
            return self.bag(ids)

    torch.manual_seed(0)
    model, ids = Bags().eval(), torch.randint(0, 50, (4, 6))
    path = tmp_path / "bags.onnx"
    export_onnx(model, (ids,), path, dynamic_batch=True, input_names=["ids"])
    ops = [n.op_type for g in onnx_passes._graphs(onnx.load(str(path)).graph) for n in g.node]
    assert "Loop" in ops and "CastLike" not in ops, ops
    got = ort.InferenceSession(str(path)).run(None, {"ids": ids.numpy()})[0]
    np.testing.assert_allclose(got, model(ids).detach().numpy(), rtol=1e-6, atol=1e-6)


def test_sums_before_layer_norms_escape_the_skip_layer_norm_fusion(tmp_path):
    # ONNX Runtime 1.32's SkipLayerNormalization CPU kernel: 1330 µs at 8 x 128 x 256, against 196 µs
    # for the Add and LayerNormalization it fuses (BERT 1.23x of onnxruntime's quantizer, 0.91x after)
    rng = np.random.default_rng(0)
    d = 32
    inits = [numpy_helper.from_array(rng.normal(1, 0.1, d).astype(np.float32), "g")]
    inits.append(numpy_helper.from_array(rng.normal(0, 0.1, d).astype(np.float32), "b"))
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["r"]),
        helper.make_node("Add", ["x", "r"], ["s"]),
        helper.make_node("LayerNormalization", ["s", "g", "b"], ["y"], axis=-1),
        helper.make_node("Add", ["y", "r"], ["z"]),  # read by no norm: stays an Add
    ]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 8, d]) for n in ("x", "z")]
    model = helper.make_model(
        helper.make_graph(nodes, "ln", io[:1], io[1:], inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    x = rng.standard_normal((4, 8, d)).astype(np.float32)
    before, _ = run(model, x)
    assert "SkipLayerNormalization" in optimized_ops(model, tmp_path)
    assert onnx_passes.sums_before_norms(model) == 1
    onnx.checker.check_model(model, full_check=True)
    after, ops = run(model, x)
    assert ops == ["Sigmoid", "Sum", "LayerNormalization", "Add"]
    np.testing.assert_allclose(before, after, rtol=1e-5, atol=1e-5)  # before: the fused kernel's rounding
    assert "SkipLayerNormalization" not in optimized_ops(model, tmp_path)


def optimized_ops(model: onnx.ModelProto, tmp_path) -> set[str]:
    """The op types onnxruntime runs after its own fusions (level EXTENDED, as the diagnosis uses)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return {n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node}


def test_softplus_becomes_vectorised_ops():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("Softplus", ["x"], ["y"])], "sp", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    v = (
        np.concatenate([np.linspace(-100, 100, 396), [-1e30, 1e30, 0, 88.8]])
        .astype(np.float32)
        .reshape(-1, 4)
    )
    before, _ = run(model, v)
    assert onnx_passes.fast_softplus(model) == 1
    onnx.checker.check_model(model, full_check=True)
    after, ops = run(model, v)
    assert "Softplus" not in ops
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-7)


def test_the_export_leaves_out_the_quadratic_slice_split_rule(tmp_path, monkeypatch):
    # onnxscript's SlicesSplit indexes the whole graph for every Slice it tries: 185 of 303 s exporting
    # a 16-step unrolled SRU. The export must not try it, and must still fold and rewrite the rest.
    import onnxscript.rewriter
    import torch
    from onnxscript.rewriter.rules.common import slice_split_rule

    from core.engine.onnx_export import export_onnx

    tried = []

    def spy(*args, **kwargs):
        tried.append(args)  # and report no match

    monkeypatch.setattr(slice_split_rule, "try_rewrite", spy)
    rules = onnxscript.rewriter._DEFAULT_REWRITE_RULES

    class Steps(torch.nn.Module):
        def forward(self, x):
            h = torch.zeros_like(x[:, 0])
            for t in range(x.shape[1]):
                h = torch.tanh(x[:, t] + h[..., :8].repeat(1, 2))
            return h

    x = torch.randn(2, 6, 16)
    path = tmp_path / "steps.onnx"
    export_onnx(Steps(), (x,), path, dynamic_batch=True, input_names=["x"])
    assert not tried
    assert onnxscript.rewriter._DEFAULT_REWRITE_RULES is rules  # restored for anyone else
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "Constant" not in ops and ops.count("Slice") >= 6, ops  # constants folded, the steps' slices kept
    got = ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, Steps()(x).numpy(), rtol=1e-5, atol=1e-6)


def test_a_failed_export_says_what_failed_and_how_to_go_on(tmp_path):
    # the exporter's own first line named only its step ("... step 1/3 ... Next steps:")
    import torch

    from core.engine.onnx_export import export_onnx
    from core.errors import UserError

    class TensorLow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.low = torch.nn.Parameter(torch.tensor(30.0))

        def forward(self, x):
            return torch.clamp(x, self.low, 8000.0)  # no overload takes a tensor and a number

    with pytest.raises(UserError) as err:
        export_onnx(TensorLow(), (torch.randn(2, 4),), tmp_path / "m.onnx", True, ["x"])
    text = str(err.value)
    assert "step 1/3" in text and "clamp() received an invalid combination" in text, text
    assert "Next steps" not in text and "\x1b" not in text and "--no-onnx" in text, text
