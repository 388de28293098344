"""Preset id -> torchao PT2E quantizer.

`onnxruntime`, `tensorrt` and `xnnpack` use `OpQuantizer`, our own annotator: it places Q/DQ exactly where
the target runtime fuses them (DQ -> Conv/Gemm/MatMul/Add -> Q, ReLU folded into the Q range, int32
bias derived from input and weight scales, int8 passing through pools and reshapes without a float
hop). The inductor presets use torchao's quantizers unchanged.
"""

from __future__ import annotations

import fnmatch
import functools
import operator
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e import (
    DerivedObserverOrFakeQuantize,
    FakeQuantizeBase,
    FusedMovingAvgObsFakeQuantize,
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    ObserverBase,
    PerChannelMinMaxObserver,
)
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e
from torchao.quantization.pt2e.quantizer import (
    DerivedQuantizationSpec,
    QuantizationAnnotation,
    QuantizationSpec,
    Quantizer,
    SharedQuantizationSpec,
)

from core.presets import get_preset

aten = torch.ops.aten
Q_KEY = "quantization_annotation"
SHARE_KEY = "qdq_cat_shares_range"
# an input read elsewhere keeps its own range when the joint one is wider than this (see cats_share_ranges)
CAT_STRETCH = 2**0.5

CONV_OPS = {aten.conv1d.default, aten.conv2d.default, aten.conv3d.default}
LINEAR_OPS = {aten.linear.default}
MATMUL_OPS = {aten.matmul.default, aten.bmm.default, aten.mm.default}
ADD_OPS = {aten.add.Tensor, aten.add_.Tensor, operator.add}
MUL_OPS = {aten.mul.Tensor, aten.mul_.Tensor, operator.mul}
DIV_OPS = {aten.div.Tensor, aten.div_.Tensor, operator.truediv}
RELU_OPS = {aten.relu.default, aten.relu_.default}
CLIP_OPS = {aten.hardtanh.default, aten.hardtanh_.default, aten.clamp.default}
TOKEN_NORM_OPS = {aten.layer_norm.default, aten.rms_norm.default}
# float-only math whose result an 8-bit argument ruins (see _float_after)
FLOAT_MATH_OPS = {aten.sin.default, aten.cos.default, aten.exp.default, aten.tan.default}
# float-only ops a model's last steps are made of (a capsule's squash, a normalised embedding, a
# log-softmax): a multiply whose every path to the output runs through them stays float
FLOAT_TAIL_OPS = {
    *FLOAT_MATH_OPS,
    aten.div.Tensor,
    aten.sqrt.default,
    aten.rsqrt.default,
    aten.log.default,
    aten.pow.Tensor_Scalar,
    aten.tanh.default,
    aten.sum.dim_IntList,
    aten.linalg_vector_norm.default,
    aten.clamp_min.default,
    aten.expand_as.default,
    aten.softmax.int,
    aten.log_softmax.int,
}
# Ops that move int8 values without changing them (or only pick among them): they share the input's
# quantization, so int8 flows on and runtimes drop the Q/DQ pair around them.
PASS_THROUGH_OPS = {
    aten.max_pool1d.default,
    aten.max_pool2d.default,
    aten.max_pool3d.default,
    aten.flatten.using_ints,
    aten.view.default,
    aten.reshape.default,
    aten.permute.default,
    aten.transpose.int,
    aten.squeeze.dim,
    aten.squeeze.dims,
    aten.unsqueeze.default,
    aten.unflatten.int,
    aten.select.int,
    aten.slice.Tensor,
    aten.expand.default,
    aten.contiguous.default,
    aten.clone.default,
    aten.dropout.default,
    aten.pixel_shuffle.default,
    aten.pixel_unshuffle.default,
    aten.flip.default,  # a Slice with negative steps in ONNX, which ONNX Runtime runs on uint8
    aten.upsample_nearest1d.vec,
    aten.upsample_nearest2d.vec,
    aten.upsample_bilinear2d.vec,  # interpolates between neighbours: never leaves their range
    aten.amax.default,  # max over time in a text CNN; ONNX Runtime runs ReduceMax on uint8
    aten.unfold.default,  # sliding windows (Longformer's keys): a Gather between transposes
}
# Ops that split one tensor into several (read through getitem): each piece shares the input's scale.
SPLIT_OPS = {aten.split.Tensor, aten.split_with_sizes.default, aten.chunk.default, aten.unbind.int}
CAT_OPS = {aten.cat.default, aten.concat.default}
# Ops that average int8 values: the output range stays inside the input range, so sharing is safe.
AVERAGING_OPS = {
    aten.adaptive_avg_pool1d.default,
    aten.adaptive_avg_pool2d.default,
    aten.avg_pool1d.default,
    aten.avg_pool2d.default,
    aten.mean.dim,
}
WINDOW_POOLS = {aten.avg_pool1d.default, aten.avg_pool2d.default}
# Ops with an integer kernel in ONNX Runtime (QLinearSigmoid, QLinearLeakyRelu) whose output range
# differs from the input's: their output gets its own observer. Not softmax: QLinearSoftmax made
# attention slower than its float softmax.
OWN_RANGE_OPS = {aten.sigmoid.default, aten.leaky_relu.default}
SOFTMAX_OPS = {aten._softmax.default, aten.softmax.int}


@dataclass(frozen=True)
class TargetScheme:
    """How one runtime wants tensors quantized."""

    act_dtype: torch.dtype  # torch.uint8 or torch.int8
    act_symmetric: bool
    int32_bias: bool  # derive an int32 bias from input and weight scales (ONNX Runtime integer kernels)
    quantize_pass_through: bool  # keep int8 through pools and reshapes
    quantize_mul: bool
    float_when_faster: bool = False  # leave a linear float where float_is_faster says so


SCHEMES = {
    "onnxruntime": TargetScheme(torch.uint8, False, True, True, True, float_when_faster=True),
    "tensorrt": TargetScheme(torch.int8, True, False, False, False),
    "xnnpack": TargetScheme(torch.int8, False, False, True, False),
}


def float_is_faster(inputs: int, outputs: int) -> bool:
    """A linear over fewer than 16 inputs into 4096 outputs or more runs faster in float in ONNX Runtime.

    Its int8 linear lost to the float MatMul at every K <= 8 (1.3-4.7x; batch 2 and 64, 4096 and
    65536 outputs), mostly at K = 16 (0.86-1.82x) and won from K = 32 (0.29-0.89x). A dynamic conv's
    mm(attention[B, 4], experts[4, N]) took 728 us as QGemm, 170 as float MatMul. Narrower linears, not
    measured, are left int8: float would save microseconds there and add a Q/DQ pair.
    """
    return inputs < 16 and outputs >= 4096


def _float_is_faster_for(weight: Node) -> bool:
    w = weight.meta.get("val")
    return isinstance(w, torch.Tensor) and w.dim() == 2 and float_is_faster(int(w.shape[1]), int(w.shape[0]))


@dataclass(frozen=True)
class QuantizerOptions:
    preset: str
    observer: str | None = None
    per_channel: bool = True
    keep_float: tuple[str, ...] = ()
    qat: bool = False


# The smallest scale an observer may choose. torchao's inductor configs use 2**-12, which is coarser
# than the ideal scale of small weights (|w| < 0.03 at 127 levels): late ResNet layers then use a
# third of the int8 range. float32 resolution keeps every channel's full range.
EPS = {"eps": float(torch.finfo(torch.float32).eps)}


def _act_observer(name: str, qat: bool):
    eps = EPS
    if qat:
        return FusedMovingAvgObsFakeQuantize.with_args(**eps)
    return {
        "minmax": MinMaxObserver,
        "histogram": HistogramObserver,
        "moving-average": MovingAverageMinMaxObserver,
    }[name].with_args(**eps)


def act_qspec(scheme: TargetScheme, observer: str, qat: bool) -> QuantizationSpec:
    if scheme.act_dtype == torch.uint8:
        qmin, qmax = 0, 255
    else:
        qmin, qmax = (-127, 127) if scheme.act_symmetric else (-128, 127)
    return QuantizationSpec(
        dtype=scheme.act_dtype,
        quant_min=qmin,
        quant_max=qmax,
        qscheme=torch.per_tensor_symmetric if scheme.act_symmetric else torch.per_tensor_affine,
        observer_or_fake_quant_ctr=_act_observer(observer, qat),
    )


def weight_qspec(per_channel: bool, qat: bool, ch_axis: int = 0) -> QuantizationSpec:
    eps = EPS
    if qat:
        obs = MovingAveragePerChannelMinMaxObserver if per_channel else MovingAverageMinMaxObserver
        ctr = FusedMovingAvgObsFakeQuantize.with_args(observer=obs, **eps)
    else:
        ctr = (PerChannelMinMaxObserver if per_channel else MinMaxObserver).with_args(**eps)
    return QuantizationSpec(
        dtype=torch.int8,
        quant_min=-127,
        quant_max=127,
        qscheme=torch.per_channel_symmetric if per_channel else torch.per_tensor_symmetric,
        ch_axis=ch_axis if per_channel else None,
        observer_or_fake_quant_ctr=ctr,
    )


def _scaled_qparams(c: float, obs_or_fqs):
    scale, zero_point = obs_or_fqs[0].calculate_qparams()
    return scale * c, zero_point


def _scaling_factor(node: Node) -> float | None:
    """c when `node` is x * c or x / (1/c) with a positive Python number, and does not feed a softmax.

    Attention's score scaling is left alone: relabelled, it puts DQ -> Softmax -> Q in the file, which
    ONNX Runtime turns into QLinearSoftmax, slower than its float softmax (encoder block 0.89x -> 1.05x
    of onnxruntime's quantizer).
    """
    if node.target not in MUL_OPS | DIV_OPS or len(node.args) < 2:
        return None
    if any(u.target in SOFTMAX_OPS for u in node.users):
        return None
    arg = node.args[1]
    if not isinstance(arg, (int, float)) or isinstance(arg, bool) or arg <= 0:
        return None
    return float(arg) if node.target in MUL_OPS else 1.0 / float(arg)


def _bias_qparams(obs_or_fqs):
    act, weight = obs_or_fqs
    act_scale, _ = act.calculate_qparams()
    w_scale, _ = weight.calculate_qparams()
    scale = (act_scale * w_scale).float().reshape(-1)
    return scale, torch.zeros_like(scale, dtype=torch.int32)


# |bias| in int32 steps at most: half the range, the rest is room for the sum of products
INT32_BIAS_LIMIT = 2**30


def fit_int32_biases(model: GraphModule) -> int:
    """Widens weight ranges, per channel, where an int32 bias would not fit; returns how many channels.

    A bias's step is input scale x weight scale. A channel whose weights are all zero (pruned, or a
    spatial transformer's zero-initialised last layer) gets a weight scale of 1e-7, and a bias of 1.0
    became 6e9 steps, wrapped to -2^31: that model's output was noise (-0.1 dB; onnxruntime's quantizer
    widens the weight scale too, 19.4 dB). A float bias is no escape: ONNX Runtime turns it into int32
    itself when it fuses the conv (the int8 presets' files read -0.3 dB against their torch model).
    Call it on the calibrated model right before convert."""
    widened = 0
    for node in model.graph.nodes:
        if node.target not in CONV_OPS | LINEAR_OPS or len(node.args) < 3:
            continue
        act, weight = (_observer(model, a) for a in node.args[:2])
        bias = node.args[2]
        if isinstance(bias, Node) and bias.op == "call_module":  # the derived int32 observer
            bias = bias.args[0]
        if act is None or weight is None or not (isinstance(bias, Node) and bias.op == "get_attr"):
            continue
        b = functools.reduce(getattr, bias.target.split("."), model).detach().float().abs().reshape(-1)
        need = b / (act.calculate_qparams()[0].float().reshape(()) * INT32_BIAS_LIMIT)
        obs = getattr(weight, "activation_post_process", weight)
        if obs.max_val.numel() == 1:
            need = need.max().reshape(obs.max_val.shape)
        wide = need > weight.calculate_qparams()[0].float().reshape(need.shape)
        if not wide.any():
            continue
        limit = need * (obs.quant_max - obs.quant_min) / 2
        with torch.no_grad():
            obs.max_val.copy_(torch.where(wide, torch.maximum(obs.max_val, limit), obs.max_val))
            obs.min_val.copy_(torch.where(wide, torch.minimum(obs.min_val, -limit), obs.min_val))
        widened += int(wide.sum())
    return widened


def _observer(model: GraphModule, node) -> torch.nn.Module | None:
    """The range observer (or fake-quantize) reading `node`; None for a dynamic-quantization
    placeholder, which has no range to calculate."""
    mod = getattr(model, node.target) if isinstance(node, Node) and node.op == "call_module" else None
    if not isinstance(mod, (ObserverBase, FakeQuantizeBase)):
        return None
    return mod if hasattr(getattr(mod, "activation_post_process", mod), "max_val") else None


def convert(model: GraphModule, reference: bool = False) -> GraphModule:
    """`convert_pt2e` (Q/DQ folded into the weights) once every int32 bias fits."""
    fit_int32_biases(model)
    return convert_pt2e(model, use_reference_representation=reference, fold_quantize=True)


def bias_qspec(node: Node, per_channel: bool) -> DerivedQuantizationSpec:
    x, w = node.args[0], node.args[1]
    return DerivedQuantizationSpec(
        derived_from=[(x, node), (w, node)],
        derive_qparams_fn=_bias_qparams,
        dtype=torch.int32,
        quant_min=-(2**31) + 1,
        quant_max=2**31 - 1,
        qscheme=torch.per_channel_symmetric if per_channel else torch.per_tensor_symmetric,
        ch_axis=0 if per_channel else None,
    )


def module_path(node: Node) -> str:
    """Dotted path of the innermost nn.Module that produced `node` ('' at the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    # export prefixes paths with L['self'] / self; keep the user's own dotted names
    for prefix in ("L['self'].", "L__self__.", "self."):
        if path.startswith(prefix):
            path = path[len(prefix) :]
    return path


def matches_keep_float(node: Node, patterns: Iterable[str]) -> bool:
    names = (module_path(node), node.name)
    return any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names if n)


def _is_tensor(n) -> bool:
    return isinstance(n, Node) and isinstance(n.meta.get("val"), torch.Tensor)


def _not_float32(node: Node) -> bool:
    """float64 (a scientific model's layers) or half precision: int8 Q/DQ ops take float32 only. Nor
    integer arithmetic (ids + per-field offsets into a recommender's shared table): observing it
    crashed calibration, an observer cannot histogram int64. Of several outputs (max-pool values and
    indices) only the floating ones count."""
    vals = node.meta.get("val")
    if isinstance(vals, torch.Tensor):
        return vals.dtype != torch.float32
    vals = vals if isinstance(vals, (list, tuple)) else [vals]
    return any(
        isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype != torch.float32 for v in vals
    )


def _residual_stream(node: Node, stream: set[Node]) -> bool:
    """A transformer's residual sum, read by a LayerNorm or RMSNorm (float in every runtime; also written
    out, as LLaMA code does) or by the next residual sum: it stays float. Rounded to 8 bits it cost a
    ViT's class token most of its precision (its row is ~100x smaller than the patch rows sharing the
    scale) and each norm magnifies that; the linears before and after still run in int8."""
    return any(_normalised_later(v) for v in _with_casts(node)) or any(a in stream for a in node.args[:2])


# Ops that only move a token tensor's rows around (a video transformer's time/space regrouping)
TOKEN_MOVES = {
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
    aten.permute.default,
    aten.transpose.int,
    aten.flatten.using_ints,
    aten.unflatten.int,
    aten.squeeze.dim,
    aten.unsqueeze.default,
    aten.select.int,
    aten.slice.Tensor,
    aten.contiguous.default,
    aten.clone.default,
    *CAT_OPS,
}


def _normalised_later(x: Node, depth: int = 12, seen: set | None = None) -> bool:
    """`x` is read by a norm, also after its rows are sliced, regrouped, concatenated or offset by a
    constant table (TimeSformer's `cat(cls, patches) + pos_embed`, sliced and regrouped by frame, plus a
    time table, before its first LayerNorm): the same class-token precision is at stake. `seen` keeps
    81 slices into one concatenation from walking what follows it 81 times."""
    seen = set() if seen is None else seen
    for u in x.users:
        if _normalises(u, x):
            return True
        if u in seen:
            continue
        seen.add(u)
        if (
            depth
            and (u.target in TOKEN_MOVES or u.target in ADD_OPS and any(_is_get_attr(a) for a in u.args[:2]))
            and _normalised_later(u, depth - 1, seen)
        ):
            return True
    return False


def _is_get_attr(a) -> bool:
    return isinstance(a, Node) and a.op == "get_attr"


def _with_casts(node: Node) -> list[Node]:
    """The node and its x.to(torch.float32) readers: HF's T5 and LLaMA norms cast first (a no-op on a
    float32 tensor that export keeps as a node, which later ops read instead of x)."""
    return [node, *(u for u in node.users if _float32_cast(u))]


def _float32_cast(node: Node) -> bool:
    return node.target is aten.to.dtype and node.args[1:] == (torch.float32,)


def _normalises(user: Node, x: Node) -> bool:
    """`user` is a norm of x or its first statistic: x.pow(2) (RMSNorm written out), or x.mean(dims,
    keepdim=True) that x - mean reads (LayerNorm written out)."""
    if user.target in TOKEN_NORM_OPS:
        return True
    if user.target is aten.pow.Tensor_Scalar:
        return user.args[1] == 2
    return user.target is aten.mean.dim and any(
        v.target is aten.sub.Tensor and v.args[:2] == (x, user) for v in user.users
    )


def _float_after(node: Node) -> bool:
    """What reads the op's output computes in float, so rounding that output to 8 bits only costs
    precision: sin(t * f) of a timestep embedding (t up to 1000, a step of 4 on an 8-bit grid: 12 dB),
    or a capsule net's squash, whose last multiply feeds a divide and a norm (29 dB against 31 for
    onnxruntime's quantizer; 34 with it float). Only multiplies for the second: an add or matmul that
    makes the output stays an integer kernel, as the deployment target asks."""
    users = list(node.users)
    if users and all(u.target in FLOAT_MATH_OPS for u in users):
        return True
    if node.target in ADD_OPS and _into_softmax(node):
        return True
    return (
        node.target in MUL_OPS
        and bool(users)
        and all(u.target in FLOAT_TAIL_OPS and only_feeds_output(u, FLOAT_TAIL_OPS) for u in users)
    )


def _into_softmax(node: Node) -> bool:
    """Attention scores plus an additive mask (HF's (1 - mask) * -10000 or finfo.min) or a position
    bias, read only by softmax (also through another such add, reshapes or a concatenation): one 8-bit
    range spans the mask's -1e4 to -3e38 and the scores, which all round to zero (a uniform attention;
    a T5 encoder read 8.7 dB in both quantizers), and a -inf mask (CCNet's diagonal, viewed and
    concatenated before its softmax) got a range of zero width and vanished. The softmax runs in float
    anyway."""
    users = [u for u in node.users if not _reads_only_metadata(u, node)]
    return bool(users) and all(
        u.target in SOFTMAX_OPS
        or (
            (u.target in ADD_OPS or u.target in CAT_OPS or _float32_cast(u) or u.target in PASS_THROUGH_OPS)
            and _into_softmax(u)
        )
        for u in users
    )


def _reads_only_metadata(user: Node, node: Node) -> bool:
    """`user` reads no values of `node`: a dtype check, or x.type_as(node)."""
    return user.target is aten._assert_tensor_metadata.default or (
        user.target is aten.type_as.default and user.args[0] is not node
    )


def _computed_from_inputs(node: Node) -> bool:
    """A weight the model computes from its inputs (CondConv's per-sample mixture of expert kernels,
    applied as one conv grouped over the batch): observed as a weight, its bias got an int32 Q the ONNX
    checker refuses and its per-channel ranges had the calibration batch's size. Not annotated as a
    weighted op; onnxruntime's quantizer leaves it float too."""
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n.op == "placeholder":
            return True
        for a in n.all_input_nodes:
            if a not in seen:
                seen.add(a)
                stack.append(a)
    return False


def _single_user(node: Node) -> Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _is_relu_like(node: Node) -> bool:
    if node.target in RELU_OPS:
        return True
    if node.target in CLIP_OPS:
        lo = node.args[1] if len(node.args) > 1 else node.kwargs.get("min_val", node.kwargs.get("min"))
        return lo == 0 or lo == 0.0
    return False


def _matrix_vector(node: Node) -> bool:
    """A batched matmul whose right operand is a batch of column vectors [..., k, 1] with more than
    one matrix on the left (an LRU's per-state Toeplitz kernels [N, L, L] times [B, N, L, 1]): ONNX
    Runtime's QLinearMatMul runs one tiny product per matrix, 2.8 ms against 1.1 ms for the float
    MatMul onnxruntime's quantizer keeps (a 2-D constant on the left becomes a linear instead:
    `graph_passes._linear_of_columns`)."""
    if node.target not in MATMUL_OPS:
        return False
    a, b = (x.meta.get("val") if isinstance(x, Node) else None for x in node.args[:2])
    return (
        isinstance(a, torch.Tensor)
        and isinstance(b, torch.Tensor)
        and a.dim() >= 3
        and b.dim() >= 3
        and b.shape[-1] == 1
    )


class OpQuantizer(Quantizer):
    """Annotates compute ops and their fused activations for a `TargetScheme`."""

    def __init__(self, scheme: TargetScheme, opts: QuantizerOptions, observer: str):
        super().__init__()
        self.scheme = scheme
        self.opts = opts
        self.act = act_qspec(scheme, observer, opts.qat)
        self.per_channel = opts.per_channel

    # -- helpers -------------------------------------------------------------------------------------
    def _skip(self, node: Node) -> bool:
        return Q_KEY in node.meta or matches_keep_float(node, self.opts.keep_float) or _not_float32(node)

    def _annotate_output(self, node: Node, anchor: Node, qspec=None) -> list[Node]:
        """Put the output Q after `anchor` or after a ReLU, ReLU6 or other clamp that directly follows
        it (ONNX Runtime drops a Clip whose range holds the Q's)."""
        out = anchor
        fused = []
        user = _single_user(anchor)
        if user is not None and user.target in RELU_OPS | CLIP_OPS and not self._skip(user):
            out = user
            fused.append(user)
        qspec = qspec or self.act
        if out is node:
            node.meta[Q_KEY].output_qspec = qspec
        else:
            out.meta[Q_KEY] = QuantizationAnnotation(output_qspec=qspec, _annotated=True)
            # the activation between op and ReLU stays unobserved
        return fused

    def annotate(self, model: GraphModule) -> GraphModule:
        stream: set[Node] = set()
        for node in model.graph.nodes:
            if node.op != "call_function" or self._skip(node):
                continue
            t = node.target
            if t in ADD_OPS and _residual_stream(node, stream):
                stream.update(_with_casts(node))
            elif t in CONV_OPS or t in LINEAR_OPS:
                self._annotate_weighted(node)
            elif (
                (
                    t in MATMUL_OPS
                    or t in ADD_OPS
                    and all(_is_tensor(a) for a in node.args[:2])
                    or self.scheme.quantize_mul
                    and t in MUL_OPS
                    and all(_is_tensor(a) for a in node.args[:2])
                )
                and not _float_after(node)
                and not _matrix_vector(node)
            ):
                self._annotate_binary(node)
        if self.scheme.quantize_pass_through:
            self._annotate_pass_through(model)
        return model

    def _annotate_weighted(self, node: Node) -> None:
        x, w = node.args[0], node.args[1]
        bias = node.args[2] if len(node.args) > 2 else None
        if not (_is_tensor(x) and isinstance(w, Node)) or _computed_from_inputs(w):
            return
        if self.scheme.float_when_faster and node.target in LINEAR_OPS and _float_is_faster_for(w):
            return
        qmap = {x: self.act, w: weight_qspec(self.per_channel, self.opts.qat)}
        if isinstance(bias, Node) and self.scheme.int32_bias:
            qmap[bias] = bias_qspec(node, self.per_channel)
        node.meta[Q_KEY] = QuantizationAnnotation(input_qspec_map=qmap, _annotated=True)
        self._annotate_output(node, node)

    def _annotate_binary(self, node: Node) -> None:
        a, b = node.args[0], node.args[1]
        if _not_float32(a) or _not_float32(b):
            # float slopes times int64 positions (BLOOM's ALiBi): an int64 input cannot be observed
            return
        qmap = {a: self.act}
        if b is not a:
            qmap[b] = self.act
        node.meta[Q_KEY] = QuantizationAnnotation(input_qspec_map=qmap, _annotated=True)
        self._annotate_output(node, node)

    def _annotate_pass_through(self, model: GraphModule) -> None:
        """Let int8 flow on through ops whose input is already quantized (in graph order, so chains of
        them follow the first)."""
        for node in model.graph.nodes:
            if node.op != "call_function" or self._skip(node):
                continue
            t = node.target
            if t in CAT_OPS:
                self._annotate_cat(node)
                continue
            src = node.args[0] if node.args else None
            if not _is_tensor(src):
                continue
            if not _has_quantized_output(src):
                if _is_relu_like(node) and _feeds_quantized(node):
                    # after a float op (a norm, say), before a quantized one (also through an upsample,
                    # which then runs on uint8): the ReLU folds into the Q that op needs anyway and
                    # vanishes. Not before a float op: a Pad would add a Q/DQ pair for nothing
                    node.meta[Q_KEY] = QuantizationAnnotation(output_qspec=self.act, _annotated=True)
                elif t is aten.pad.default and _pads_zeros(node) and _only_into_convs(node):
                    # a zero pad on the model input or after a float op (TF-style "same" padding):
                    # quantized before the pad, it runs on uint8 and becomes the conv's own padding
                    # (see zero_pads_keep_input_range) instead of a float Pad
                    self._annotate_unary(node, src, self.act)
                elif t in WINDOW_POOLS and not only_feeds_output(node):
                    # a pool graph_passes left a pool (< 8 channels) on the model input or after a
                    # float op: float AveragePool took 1974 us, QLinearAveragePool 505 (DLinear)
                    self._annotate_unary(node, src, self.act)
                elif t in OWN_RANGE_OPS and _observed_by_a_user(src) and not only_feeds_output(node):
                    # a SiLU gate after a float op: the multiply quantizes x anyway, so the sigmoid
                    # reads those integers too and runs as QLinearSigmoid
                    self._annotate_unary(node, src, self.act)
                continue
            if t in SPLIT_OPS:
                self._annotate_split(node, src)
            elif t is aten.pad.default and _pads_zeros(node) and _only_into_windows(node):
                # a zero pad before unfold (Longformer's sliding windows): its own range while
                # calibrating, then its input's (zero_pads_keep_input_range), so the pad and the
                # windows, 2w + 1 times the data, move uint8 instead of float
                self._annotate_unary(node, src, self.act)
            elif _passes_through(node):
                self._annotate_unary(node, src, SharedQuantizationSpec((src, node)))
            elif (c := _scaling_factor(node)) is not None:
                # same integers, scale times c: onnx_passes.fold_scaling_muls drops the multiply
                self._annotate_unary(node, src, self._scaled(src, node, c))
            elif (t in AVERAGING_OPS or t in OWN_RANGE_OPS) and not only_feeds_output(node):
                # an average's range is narrower than its input's (QLinearGlobalAveragePool takes two
                # scales); a sigmoid's or softmax's differs altogether: both get their own
                self._annotate_unary(node, src, self.act)

    def _annotate_unary(self, node: Node, src: Node, output_qspec) -> None:
        node.meta[Q_KEY] = QuantizationAnnotation(
            input_qspec_map={src: self.act}, output_qspec=output_qspec, _annotated=True
        )

    def _scaled(self, src: Node, node: Node, c: float) -> DerivedQuantizationSpec:
        a = self.act
        return DerivedQuantizationSpec(
            derived_from=[(src, node)],
            derive_qparams_fn=functools.partial(_scaled_qparams, c),
            dtype=a.dtype,
            quant_min=a.quant_min,
            quant_max=a.quant_max,
            qscheme=a.qscheme,
        )

    def _annotate_cat(self, node: Node) -> None:
        """Each input and the output observed on their own; `cats_share_ranges` then gives them one
        range where that costs no input's other readers much.

        Never when ReLU outputs meet signed tensors (a U-Net skip beside a transposed conv, a DenseNet
        stem's max-pool beside a dense layer's conv): the shared range would go negative, its zero point
        leave 0, and the ReLU no longer fold into its conv's Q, which then runs in float (and the pool
        after it in ONNX Runtime's slow NCHW uint8 kernel). Each input then keeps its own range, as
        onnxruntime's quantizer does.
        """
        inputs = list(dict.fromkeys(a for a in node.args[0] if _is_tensor(a)))
        if not inputs or not any(_has_quantized_output(a) for a in inputs) or _into_softmax(node):
            return
        if len({_non_negative(a) for a in inputs}) == 1:
            node.meta[SHARE_KEY] = True  # one range once calibrated: see cats_share_ranges
        qmap = {a: self.act for a in inputs}
        node.meta[Q_KEY] = QuantizationAnnotation(
            input_qspec_map=qmap, output_qspec=self.act, _annotated=True
        )

    def _annotate_split(self, node: Node, src: Node) -> None:
        node.meta[Q_KEY] = QuantizationAnnotation(input_qspec_map={src: self.act}, _annotated=True)
        for user in node.users:
            if user.target is operator.getitem and not self._skip(user):
                user.meta[Q_KEY] = QuantizationAnnotation(
                    output_qspec=SharedQuantizationSpec((src, node)), _annotated=True
                )

    def validate(self, model: GraphModule) -> None:
        return None


def _non_negative(node: Node) -> bool:
    """A ReLU's (or sigmoid's) output, also seen through pools, reshapes, splits and concatenations."""
    while isinstance(node, Node):
        t = node.target
        if _is_relu_like(node) or t in OWN_RANGE_OPS and t is not aten.leaky_relu.default:
            return True
        if t in CAT_OPS:
            return all(_non_negative(a) for a in node.args[0] if _is_tensor(a))
        if not (t is operator.getitem or _passes_through(node) or t in AVERAGING_OPS | SPLIT_OPS):
            return False
        node = node.args[0]
    return False


def _has_quantized_output(node: Node) -> bool:
    ann = node.meta.get(Q_KEY)
    return ann is not None and ann.output_qspec is not None


def _passes_through(node: Node) -> bool:
    """Moves int8 values unchanged: a PASS_THROUGH_OPS op, or a pad that copies edge values.

    Not a zero pad: its zeros join the shared histogram, which then clips harder (a temporal-shift
    model lost 2 dB against keeping the pad in float)."""
    if node.target in PASS_THROUGH_OPS:
        return True
    if node.target is not aten.pad.default:
        return False
    mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
    return mode in ("reflect", "replicate", "circular")


def zero_pads_keep_input_range(prepared: GraphModule) -> int:
    """After calibration, the observer after each zero pad becomes the one before it; returns how many.

    A zero pad outputs its input's values and zeros, and zero is exact in every range: with one range
    the integers pass through unchanged, and a conv reading them takes the pad as its own padding
    (`onnx_passes.pads_into_convs`; WaveNet's causal pads cost 17% of its latency) instead of the
    tensor being rounded again to a range of its own. Not shared while calibrating: the zeros would
    join the input's histogram, which then clips harder (a temporal-shift model lost 2 dB). Only pads
    read by convs alone, or by unfolds alone (Longformer's key windows, which then move as uint8): the
    shifted tensor of that model, concatenated, lost 0.9 dB on its input's range.
    """
    calls = [n for n in prepared.graph.nodes if n.op == "call_module"]
    uses = Counter(id(getattr(prepared, n.target)) for n in calls)
    replace = {}
    for node in calls:
        pad = node.args[0] if node.args else None
        if not (isinstance(pad, Node) and pad.target is aten.pad.default and _pads_zeros(pad)):
            continue
        before = pad.args[0]
        if not (isinstance(before, Node) and before.op == "call_module"):
            continue
        obs, src = getattr(prepared, node.target), getattr(prepared, before.target)
        if _only_into_convs(node):
            calls = 1
        elif _only_into_windows(node):
            calls = 1 + len(node.users)  # the windows each unfold takes share the pad's observer
        else:
            continue
        if uses[id(obs)] == calls and _range_module(obs) and type(obs) is type(src) and _same_grid(obs, src):
            replace[id(obs)] = src
    replace_observers(prepared, replace)
    return len(replace)


def cats_share_ranges(prepared: GraphModule) -> int:
    """After calibration, each concatenation's inputs take its output's observer; returns how many did.

    One range makes the concatenation a copy of int8 (onnxruntime's quantizer requantizes each input to
    the output's scale, rounding twice). Not for an input that other ops read as well, when the joint
    range is r > CAT_STRETCH times its own: its readers' rounding noise would grow r^2 times, where
    rounding twice adds the input's own noise once to its part of the output. Shared while
    calibrating, an EGNN's node features (-4..4) took the range of the messages summed beside them
    (-4..45), and its residual stream lost 8 dB against onnxruntime's quantizer.
    """
    replace: dict[int, torch.nn.Module] = {}

    def current(obs):  # a concatenation of concatenations ends on the outer output's observer
        while id(obs) in replace:
            obs = replace[id(obs)]
        return obs

    uses = Counter(id(getattr(prepared, n.target)) for n in prepared.graph.nodes if n.op == "call_module")
    for node in prepared.graph.nodes:
        if not node.meta.get(SHARE_KEY) or len(node.users) != 1:
            continue
        (after,) = node.users
        if after.op != "call_module" or not _range_module(out := getattr(prepared, after.target)):
            continue
        for arg in dict.fromkeys(node.args[0]):
            if not (isinstance(arg, Node) and arg.op == "call_module"):
                continue
            obs = current(own := getattr(prepared, arg.target))
            if obs is out or not (_range_module(obs) and type(obs) is type(out) and _same_grid(obs, out)):
                continue
            alone = obs is own and uses[id(own)] == 1 and len(arg.users) == 1  # read by this cat only
            if alone or _width(out) <= CAT_STRETCH * _width(obs):
                replace[id(obs)] = out
    replace_observers(prepared, {key: current(obs) for key, obs in replace.items()})
    return len(replace)


def _width(obs) -> float:
    obs = getattr(obs, "activation_post_process", obs)  # a fake-quantize's observer
    return float((obs.max_val.max() - obs.min_val.min()).clamp(min=0))


def replace_observers(model: GraphModule, replace: dict[int, torch.nn.Module]) -> None:
    """Each observer whose id is a key gives way to its value under every name, and in every derived
    (int32-bias) observer that holds it: a bias left on the old one stops matching input scale x weight
    scale, and ONNX Runtime leaves its conv in float."""
    for name, mod in list(model._modules.items()):
        if id(mod) in replace:
            setattr(model, name, replace[id(mod)])
    for mod in model.modules():
        if isinstance(mod, DerivedObserverOrFakeQuantize):
            mod.obs_or_fqs = [replace.get(id(o), o) for o in mod.obs_or_fqs]


def _only_into_convs(node: Node) -> bool:
    return all(u.target in CONV_OPS and u.args[0] is node for u in node.users)


def _only_into_windows(node: Node) -> bool:
    return all(u.target is aten.unfold.default for u in node.users)


def _pads_zeros(pad: Node) -> bool:
    mode = pad.args[2] if len(pad.args) > 2 else pad.kwargs.get("mode", "constant")
    value = pad.args[3] if len(pad.args) > 3 else pad.kwargs.get("value")
    return mode == "constant" and not value


def _range_module(mod) -> bool:
    return isinstance(mod, ObserverBase | FakeQuantizeBase) and not isinstance(
        mod, DerivedObserverOrFakeQuantize
    )


def _same_grid(a, b) -> bool:
    return all(
        getattr(a, k, None) == getattr(b, k, None) for k in ("dtype", "qscheme", "quant_min", "quant_max")
    )


def _observed_by_a_user(node: Node) -> bool:
    return any(Q_KEY in u.meta and node in u.meta[Q_KEY].input_qspec_map for u in node.users)


def _feeds_quantized(node: Node) -> bool:
    """Some user quantizes this output, or passes it on (an upsample, a reshape) to one that does."""
    return _observed_by_a_user(node) or any(_passes_through(u) and _feeds_quantized(u) for u in node.users)


def only_feeds_output(node: Node, through: frozenset = frozenset()) -> bool:
    """A model output keeps float precision: quantizing it would only add a Q/DQ pair at the end (also
    seen through a flatten: a pooled embedding rounded to 8 bits lost 6 dB against a float mean), and
    through the ops in `through`."""
    return all(
        u.op == "output" or (_passes_through(u) or u.target in through) and only_feeds_output(u, through)
        for u in node.users
    )


def _inductor_quantizer(kind: str, opts: QuantizerOptions, modules: Callable[[], list[str]]):
    if kind == "arm-inductor":
        from torchao.quantization.pt2e.quantizer.arm_inductor_quantizer import (
            ArmInductorQuantizer,
            get_default_arm_inductor_quantization_config,
        )

        q = ArmInductorQuantizer()
        q.set_global(get_default_arm_inductor_quantization_config(is_qat=opts.qat))
    else:
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer,
            get_default_x86_inductor_quantization_config,
        )

        q = X86InductorQuantizer()
        dynamic = kind == "x86-inductor-dynamic"
        cfg = get_default_x86_inductor_quantization_config(is_qat=opts.qat, is_dynamic=dynamic)
        if dynamic:
            q.set_module_type_qconfig(torch.nn.Linear, cfg)
        else:
            q.set_global(cfg)
    for name in modules():
        q.set_module_name_qconfig(name, None)
    return q


def non_float32_layers(model: GraphModule) -> list[Node]:
    """Convs, linears and matmuls computing in float64 or half precision: they stay float."""
    weighted = CONV_OPS | LINEAR_OPS | MATMUL_OPS
    return [
        n for n in model.graph.nodes if n.op == "call_function" and n.target in weighted and _not_float32(n)
    ]


def build_quantizer(opts: QuantizerOptions, model: GraphModule) -> Quantizer:
    """The quantizer for a preset id; keep-float patterns are matched against module paths."""
    info = get_preset(opts.preset)
    observer = opts.observer or info.default_observer
    if opts.preset in SCHEMES:
        return OpQuantizer(SCHEMES[opts.preset], opts, observer)

    def keep_float_modules() -> list[str]:
        paths = {module_path(n) for n in model.graph.nodes if n.op == "call_function"}
        kept = {p for p in paths if p and any(fnmatch.fnmatchcase(p, pat) for pat in opts.keep_float)}
        return sorted(kept | {module_path(n) for n in non_float32_layers(model)} - {""})

    return _inductor_quantizer(opts.preset, opts, keep_float_modules)
