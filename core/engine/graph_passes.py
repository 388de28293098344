"""Graph rewrites before annotation.

Conv-BN pairs are folded up front (also for QAT, where BN statistics stay frozen anyway). A BatchNorm
that follows no conv (after a ReLU, say; not one on the model input) becomes an exact depthwise 1x1
convolution: runtimes fuse that
into an integer kernel, while a lone BatchNormalization stays float between Q and DQ. With no
batch-norm left, convert_pt2e also skips its slow conv-BN pattern search.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import operator

import torch
from torch.fx import GraphModule, Node
from torch.fx.node import map_arg
from torch.utils._pytree import tree_leaves
from torchao.quantization.pt2e.constant_fold import constant_fold
from torchao.quantization.pt2e.utils import (
    _is_conv_or_conv_transpose_node,
    fold_bn_weights_into_conv_node,
    fold_bn_weights_into_linear_node,
)

from core.engine.quantizers import only_feeds_output

aten = torch.ops.aten
BN_OPS = {aten.batch_norm.default, aten._native_batch_norm_legit_no_training.default}
GLOBAL_POOLS = {
    aten.adaptive_avg_pool1d.default,
    aten.adaptive_avg_pool2d.default,
    aten.adaptive_avg_pool3d.default,
}
CONV_BY_RANK = {3: aten.conv1d.default, 4: aten.conv2d.default, 5: aten.conv3d.default}
CONV_SPATIAL_DIMS = {op: rank - 2 for rank, op in CONV_BY_RANK.items()}
# ops whose weight holds one row per output channel on axis 0
AFFINE_FOLDABLE = {*CONV_BY_RANK.values(), aten.linear.default}
WEIGHTED_OPS = {
    *CONV_BY_RANK.values(),
    aten.conv_transpose1d.default,
    aten.conv_transpose2d.input,
    aten.convolution.default,
    aten.linear.default,
}


def _const(gm: GraphModule, node) -> torch.Tensor | None:
    if not isinstance(node, Node) or node.op != "get_attr":
        return None
    obj = gm
    for part in node.target.split("."):
        obj = getattr(obj, part)
    return obj.detach()


def _bn_args(gm: GraphModule, node: Node):
    """(weight, bias, mean, var, eps) as tensors, or None when they are not constants."""
    x, w, b, mean, var = node.args[:5]
    eps = node.args[-1] if node.target == aten._native_batch_norm_legit_no_training.default else node.args[7]
    if node.target == aten.batch_norm.default and node.args[5]:
        return None  # training-mode batch norm uses batch statistics
    mean, var = _const(gm, mean), _const(gm, var)
    if mean is None or var is None:
        return None
    c = mean.numel()
    w = _const(gm, w) if w is not None else torch.ones(c)
    b = _const(gm, b) if b is not None else torch.zeros(c)
    if w is None or b is None:
        return None
    return w.float(), b.float(), mean.float(), var.float(), float(eps)


def bn_to_depthwise_conv(gm: GraphModule) -> int:
    """Replace every remaining inference batch-norm by a depthwise 1x1 conv; returns how many."""
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in BN_OPS:
            continue
        x = node.args[0]
        val = x.meta.get("val") if isinstance(x, Node) else None
        if not isinstance(val, torch.Tensor) or val.dim() not in CONV_BY_RANK or x.op == "placeholder":
            continue  # a BN on the model's input stays float: an int8 1x1 conv over 3 channels is slow
        params = _bn_args(gm, node)
        if params is None:
            continue
        w, b, mean, var, eps = params
        scale = w / torch.sqrt(var + eps)
        c = scale.numel()
        weight = scale.reshape(c, 1, *([1] * (val.dim() - 2))).to(val.dtype)
        bias = (b - mean * scale).to(val.dtype)
        wname, bname = f"_bn_dw_weight_{count}", f"_bn_dw_bias_{count}"
        gm.register_buffer(wname, weight)
        gm.register_buffer(bname, bias)
        with gm.graph.inserting_before(node):
            wn, bn = gm.graph.get_attr(wname), gm.graph.get_attr(bname)
            wn.meta["val"], bn.meta["val"] = weight, bias
            nd = val.dim() - 2
            conv = gm.graph.call_function(
                CONV_BY_RANK[val.dim()], (x, wn, bn, [1] * nd, [0] * nd, [1] * nd, c)
            )
            conv.meta = {k: v for k, v in node.meta.items() if k != "val"}
            conv.meta["val"] = val
        out = node
        if node.target == aten._native_batch_norm_legit_no_training.default:
            getitems = [u for u in node.users if u.target is operator.getitem and u.args[1] == 0]
            for g in getitems:
                g.replace_all_uses_with(conv)
        else:
            out.replace_all_uses_with(conv)
        count += 1
    if count:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return count


def _spatial_mean_rank(node: Node) -> int | None:
    """The input rank of a mean over every axis after the channels without keepdim (`x.mean((2, 3))`)."""
    if node.target is not aten.mean.dim or node.kwargs.get("dtype") is not None:
        return None
    val = node.args[0].meta.get("val")
    dims = node.args[1] if len(node.args) > 1 else None
    keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    if val is None or val.dim() < 3 or not dims or keep:
        return None
    rank = val.dim()
    return rank if sorted(d % rank for d in dims) == list(range(2, rank)) else None


def global_pool_as_mean(gm: GraphModule) -> int:
    """adaptive_avg_pool to size 1 -> mean over the spatial axes (keepdim); a spatial mean without
    keepdim -> the same, then flatten.

    The ONNX exporter lowers adaptive pooling to ReduceMean plus a strided gather; a plain mean with
    keepdim exports as one ReduceMean that `onnx_export` turns into GlobalAveragePool, which ONNX
    Runtime runs in int8 (ReduceMean itself stays float in both quantizers' output).
    """
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function":
            continue
        if node.target in GLOBAL_POOLS:
            size = list(node.args[1]) if len(node.args) > 1 else []
            if not size or any(s != 1 for s in size):
                continue
            dims = [-(i + 1) for i in range(len(size))][::-1]
            new = _call(gm, node, aten.mean.dim, (node.args[0], dims, True))
        elif rank := _spatial_mean_rank(node):
            mean = _call(gm, node, aten.mean.dim, (node.args[0], list(range(2, rank)), True))
            new = _call(gm, node, aten.flatten.using_ints, (mean, 1))
        else:
            continue
        _replace(gm, node, new)
        count += 1
    if count:
        gm.recompile()
    return count


def _set_param(gm: GraphModule, target: str, value: torch.Tensor) -> None:
    """A new tensor under `target`: a buffer stays a buffer, anything else becomes a frozen parameter.
    Never written in place: the float model the graph was copied from may share the old tensor."""
    owner, _, leaf = target.rpartition(".")
    module = gm.get_submodule(owner) if owner else gm
    if leaf in module._buffers:
        module._buffers[leaf] = value
    else:
        setattr(module, leaf, torch.nn.Parameter(value, requires_grad=False))


def fold_conv_bn(gm: GraphModule) -> int:
    """torchao's conv-BN folding, safe for a module called twice; returns how many parameters were shared.

    The fold writes the folded weight back where the conv read it, so a weight shared by two convs (a
    Siamese tower called on two inputs) was folded twice: the SQNR of such a model fell to 7 dB. And an
    int32 bias takes its scale from its own call's input, so one bias cannot serve two calls: ONNX
    Runtime left the second call of a shared MLP (CBAM's channel attention) in float. Each extra call
    gets its own copies first; weight copies that come out equal are tied again, so the file does not
    store a shared tower twice.

    A conv whose output is also read elsewhere keeps its BN (it becomes a depthwise conv later):
    torchao's fold hands the folded output to every reader, so a pre-activation ResNet's identity
    shortcut, which reads the stem before its BN, got the normalised values (24 dB, against 45 for
    onnxruntime's quantizer).
    """
    copies: list[tuple[Node, Node]] = []
    for node in list(gm.graph.nodes):
        if node.op != "get_attr":
            continue
        calls = [u for u in node.users if u.op == "call_function" and u.target in WEIGHTED_OPS]
        for i, call in enumerate(calls[1:], 1):
            name = f"{node.target}_call{i}".replace(".", "_")
            _set_param(gm, name, _const(gm, node).clone())
            with gm.graph.inserting_after(node):
                copy = gm.graph.get_attr(name)
            copy.meta = dict(node.meta)
            call.replace_input_with(node, copy)
            copies.append((node, copy))
    for bn in list(gm.graph.nodes):
        conv = bn.args[0] if bn.op == "call_function" and bn.target in BN_OPS else None
        if isinstance(conv, Node) and _is_conv_or_conv_transpose_node(conv) and len(conv.users) == 1:
            bias = conv.args[2] if len(conv.args) > 2 else None
            fold_bn_weights_into_conv_node(conv, conv.args[1], bias, bn, gm)
        elif isinstance(conv, Node) and _linear_on_rows(conv) and len(conv.users) == 1:
            bias = conv.args[2] if len(conv.args) > 2 else None
            fold_bn_weights_into_linear_node(conv, conv.args[1], bias, bn, gm)
    gm.graph.eliminate_dead_code()
    for original, copy in copies:
        call = next(iter(copy.users), None)
        if call is not None and call.args[1] is copy and torch.equal(_const(gm, original), _const(gm, copy)):
            copy.replace_all_uses_with(original)
            gm.graph.erase_node(copy)
            delattr(gm, copy.target)
    gm.recompile()
    return len(copies)


def _linear_on_rows(node: Node) -> bool:
    """A linear on (batch, features), where a BatchNorm1d after it normalises its outputs. Folded here
    with its own copy of a shared weight: torchao's linear-BN fold (in prepare_pt2e) folds a weight
    once and drops the BNs of its other calls (TabNet's shared GLU layers, four BNs on one weight:
    14.7 dB with nothing quantized)."""
    x = node.args[0] if node.op == "call_function" and node.target is aten.linear.default else None
    val = x.meta.get("val") if isinstance(x, Node) else None
    return isinstance(val, torch.Tensor) and val.dim() == 2


def split_shared_module_calls(gm: GraphModule) -> int:
    """Give each call of a module used twice (one nn.ReLU applied in two places) its own source.

    torchao's inductor quantizers group nodes by the module that made them; two calls of one module
    then form one partition with two outputs, which they reject. A per-call source keeps them apart.
    """
    by_module: dict[str, list[Node]] = {}
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack") if node.op == "call_function" else None
        if stack and "source_fn_stack" not in node.meta:
            by_module.setdefault(list(stack.values())[-1][0], []).append(node)
    count = 0
    for nodes in by_module.values():
        targets = [n.target for n in nodes]
        for node in nodes:
            if targets.count(node.target) < 2:
                continue
            cls = _module_class(list(node.meta["nn_module_stack"].values())[-1][1])
            if cls is not None:
                node.meta["source_fn_stack"] = [(node.name, cls)]
                count += 1
    return count


def _module_class(cls_or_name):
    if isinstance(cls_or_name, type):
        return cls_or_name
    module, _, name = str(cls_or_name).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def linear_as_2d(gm: GraphModule) -> int:
    """Linear on (batch, tokens, features) -> flatten, 2-D linear, reshape back.

    Exported as-is it becomes MatMul + a float bias Add, which ONNX Runtime runs as MatMulIntegerToFloat
    plus float ops; in 2-D it is a Gemm with an int32 bias that fuses into one QGemm, and the reshapes
    carry int8 through unchanged. A ReLU or clamp right after moves before the reshape back, where it
    folds into the QGemm's output range.
    """
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target != aten.linear.default:
            continue
        x = node.args[0]
        val = x.meta.get("val") if isinstance(x, Node) else None
        out_val = node.meta.get("val")
        if not isinstance(val, torch.Tensor) or val.dim() < 3 or not isinstance(out_val, torch.Tensor):
            continue
        with gm.graph.inserting_before(node):
            flat = gm.graph.call_function(aten.flatten.using_ints, (x, 0, val.dim() - 2))
            linear = gm.graph.call_function(aten.linear.default, (flat, *node.args[1:]), dict(node.kwargs))
            sizes = []
            for d in range(val.dim() - 1):
                if isinstance(val.shape[d], int):
                    sizes.append(val.shape[d])
                else:
                    size = gm.graph.call_function(aten.sym_size.int, (x, d))
                    size.meta["val"] = val.shape[d]
                    sizes.append(size)
            back = gm.graph.call_function(aten.reshape.default, (linear, [*sizes, out_val.shape[-1]]))
        with val.fake_mode if hasattr(val, "fake_mode") else contextlib.nullcontext():
            flat_val = val.flatten(0, val.dim() - 2)
            lin_val = flat_val.new_empty((flat_val.shape[0], out_val.shape[-1]))
        for new, v in ((flat, flat_val), (linear, lin_val), (back, out_val)):
            new.meta = {k: w for k, w in node.meta.items() if k not in ("val", "source_fn_stack")}
            new.meta["val"] = v
        node.replace_all_uses_with(back)
        gm.graph.erase_node(node)
        act = next(iter(back.users)) if len(back.users) == 1 else None
        if act is not None and _bounds(act) is not None:
            # a ReLU after the reshape back ran in float (the Q must follow the Gemm): move it before
            act.replace_all_uses_with(back)
            act.args = (linear, *act.args[1:])
            back.args = (act, *back.args[1:])
            back.prepend(act)
            act.meta["val"] = lin_val
        count += 1
    if count:
        gm.recompile()
    return count


def _call(gm: GraphModule, like: Node, target, args: tuple) -> Node:
    """A new node before `like`, with `like`'s module metadata and a fake value computed from `args`."""
    vals = map_arg(args, lambda a: a.meta.get("val"))
    fake = next((v.fake_mode for v in tree_leaves(vals) if hasattr(v, "fake_mode")), None)
    with gm.graph.inserting_before(like):
        node = gm.graph.call_function(target, args)
    node.meta = {k: v for k, v in like.meta.items() if k not in ("val", "source_fn_stack")}
    with fake if fake is not None else contextlib.nullcontext():
        node.meta["val"] = target(*vals)
    return node


def _replace(gm: GraphModule, node: Node, new: Node) -> None:
    node.replace_all_uses_with(new)
    gm.graph.erase_node(node)


def _new_constant(gm: GraphModule, like: Node, value: torch.Tensor) -> Node:
    """A tensor constant (a buffer read by get_attr) that the annotator can quantize like an input."""
    name = f"_int8_const{sum(1 for _ in gm.buffers())}"
    while hasattr(gm, name):
        name += "_"
    gm.register_buffer(name, value)
    with gm.graph.inserting_before(like):
        node = gm.graph.get_attr(name)
    fake = next(v.fake_mode for n in gm.graph.nodes if hasattr(v := n.meta.get("val"), "fake_mode"))
    # static: a symbol per dimension made the reshapes after a sub-pixel conv unsolvable (a VAE hung)
    node.meta = {"val": fake.from_tensor(value, static_shapes=True)}
    return node


def _hardsigmoid(gm: GraphModule, like: Node, x: Node) -> Node:
    """clamp(x + 3, 0, 6) * (1/6): ONNX Runtime has no integer HardSigmoid, but the add runs as
    QLinearAdd with the clamp folded into its output range, and the 1/6 only relabels that output's
    scale (`quantizers` derives it; `onnx_passes.fold_scaling_muls` removes the multiply)."""
    three = _new_constant(gm, like, torch.tensor(3.0, dtype=x.meta["val"].dtype))
    shifted = _call(gm, like, aten.add.Tensor, (x, three))
    clamped = _call(gm, like, aten.hardtanh.default, (shifted, 0.0, 6.0))
    return _call(gm, like, aten.mul.Tensor, (clamped, 1 / 6))


def _scalar_slope(gm: GraphModule, prelu: Node) -> float | None:
    w = _const(gm, prelu.args[1])
    return float(w.reshape(-1)[0]) if w is not None and w.numel() == 1 else None


def _channel_multiplier(node: Node) -> int | None:
    """m for a conv with one input channel per group and m > 1 outputs per group, else None."""
    if node.target not in CONV_BY_RANK.values() or len(node.args) < 7:
        return None
    w, groups = node.args[1].meta.get("val"), node.args[6]
    # groups = a batch size (CondConv's per-sample kernels as one grouped conv) is symbolic: no multiplier
    if w is None or not isinstance(groups, int) or groups <= 1 or w.shape[1] != 1 or w.shape[0] == groups:
        return None
    return w.shape[0] // groups


def _depthwise(gm: GraphModule, conv: Node, m: int) -> Node:
    """Each input channel repeated m times, then a plain depthwise conv with the same weights: output
    channel g*m + j reads channel g either way. ONNX Runtime's int8 conv has a depthwise kernel but
    runs m > 1 as one tiny GEMM per group: 3.1 ms against 0.05-0.09 ms for the other convs of a small
    model, 40x its float time; the repeat is an Expand of uint8."""
    x = conv.args[0]
    spatial = x.meta["val"].dim() - 2
    wide = _call(gm, conv, aten.unsqueeze.default, (x, 2))
    wide = _call(gm, conv, aten.expand.default, (wide, [-1, -1, m] + [-1] * spatial))
    wide = _call(gm, conv, aten.flatten.using_ints, (wide, 1, 2))
    return _call(gm, conv, conv.target, (wide, *conv.args[1:6], conv.args[6] * m))


def _glu(gm: GraphModule, node: Node) -> Node | None:
    """GLU -> first half * sigmoid(second half): a split, QLinearSigmoid and QLinearMul in int8."""
    x, dim = node.args[0], node.args[1] if len(node.args) > 1 else -1
    size = x.meta["val"].shape[dim]
    if not isinstance(size, int):
        return None
    halves = _call(gm, node, aten.split.Tensor, (x, size // 2, dim))
    a, b = (_call(gm, node, operator.getitem, (halves, i)) for i in (0, 1))
    return _call(gm, node, aten.mul.Tensor, (a, _call(gm, node, aten.sigmoid.default, (b,))))


AVG_POOLS = {aten.avg_pool1d.default, aten.avg_pool2d.default}
ADAPTIVE_AVG_POOLS = {aten.adaptive_avg_pool1d.default, aten.adaptive_avg_pool2d.default}


def _pool_window(node: Node) -> tuple[list[int], list[int], list[int]] | None:
    """(kernel, stride, padding) of an average pool that a conv with equal weights computes exactly:
    padding counted in the divisor, no ceil mode, no divisor override, static channels; an adaptive
    pool only where the sizes divide."""
    if node.target not in AVG_POOLS | ADAPTIVE_AVG_POOLS:
        return None
    x = node.args[0].meta.get("val")
    if x is None or not isinstance(x.shape[1], int):
        return None
    spatial = x.dim() - 2
    if node.target in ADAPTIVE_AVG_POOLS:
        sizes, out = x.shape[2:], list(node.args[1])
        if not all(isinstance(n, int) for n in sizes) or any(n % o for n, o in zip(sizes, out)):
            return None
        kernel = [n // o for n, o in zip(sizes, out)]
        return kernel, kernel, [0] * spatial
    if x.shape[1] < 8:
        # ONNX Runtime's int8 depthwise conv over fewer than 8 channels lost to QLinearAveragePool in
        # every hand-built case (1-7 channels, 1.1-8x); in DLinear (7 series) 1135 us against 505
        return None
    args = [*node.args, *[None] * 7][:7]
    kernel = list(args[1])
    stride = list(args[2] or kernel)
    padding = list(args[3] or [0])
    ceil_mode, count_pad, divisor = args[4] or False, args[5] is not False, args[6]
    if ceil_mode or divisor is not None or not count_pad and any(padding):
        return None
    return tuple(v * spatial if len(v) == 1 else v for v in (kernel, stride, padding))


def _avg_pool_as_conv(gm: GraphModule, node: Node, window) -> Node:
    """A depthwise conv whose weights are all 1/k: ONNX Runtime's QLinearAveragePool took 254 us where
    this runs in its depthwise int8 kernel; 1/k is exact in int8 per channel (127 times a scale)."""
    kernel, stride, padding = window
    x = node.args[0]
    channels = x.meta["val"].shape[1]
    weight = torch.full((channels, 1, *kernel), 1.0 / math.prod(kernel), dtype=x.meta["val"].dtype)
    conv = CONV_BY_RANK[len(kernel) + 2]
    dilation = [1] * len(kernel)
    return _call(
        gm, node, conv, (x, _new_constant(gm, node, weight), None, stride, padding, dilation, channels)
    )


_TRANSPOSED = {aten.conv_transpose1d.default: 1, aten.conv_transpose2d.input: 2}
_OUTPUT_ACTIVATIONS = frozenset({aten.tanh.default, aten.sigmoid.default})
# activations that fold into a conv's output Q (or get their own, LeakyReLU), and the ops that only
# move values, which they commute with
_MOVES = {
    aten.pixel_shuffle.default,
    aten.slice.Tensor,
    aten.reshape.default,
    aten.view.default,
    aten.transpose.int,
    aten.permute.default,
    aten.squeeze.dim,  # Caser: relu(conv(x).squeeze(3)) ran in float, and the max-pool after it
    aten.squeeze.dims,
}
_ELEMENTWISE = {
    aten.relu.default: aten.relu.default,
    aten.relu_.default: aten.relu.default,
    aten.hardtanh.default: aten.hardtanh.default,
    aten.hardtanh_.default: aten.hardtanh.default,
    aten.leaky_relu.default: aten.leaky_relu.default,
    aten.leaky_relu_.default: aten.leaky_relu.default,
}


def _per_axis(v, d: int) -> list[int]:
    """A conv setting as one number per spatial axis (torch accepts one for all)."""
    return [*v] * d if len(v) == 1 else [*v]


def _subpixel_weight(weight: torch.Tensor, strides: list[int], taps: list[int], groups: int) -> torch.Tensor:
    """(c_in, c_out / groups, k...) -> (c_out * prod(s), c_in / groups, K...): taps padded to K * s,
    split into phases, reversed; output channel c * prod(s) + phase, the order pixel_shuffle reads."""
    d, k, (c_in, c_out_g) = len(taps), weight.shape[2:], weight.shape[:2]
    w = torch.nn.functional.pad(
        weight, [v for kk, t, s in zip(*map(reversed, (k, taps, strides))) for v in (0, t * s - kk)]
    )
    w = w.reshape(groups, c_in // groups, c_out_g, *[v for t, s in zip(taps, strides) for v in (t, s)])
    w = w.flip([3 + 2 * i for i in range(d)])
    order = [0, 2, *[4 + 2 * i for i in range(d)], 1, *[3 + 2 * i for i in range(d)]]
    return w.permute(order).reshape(groups * c_out_g * math.prod(strides), c_in // groups, *taps).contiguous()


def _subpixel(gm: GraphModule, node: Node) -> Node | None:
    """A transposed conv (stride s, kernel k) -> a conv with s^d times the output channels, one per
    output phase, then a pixel shuffle and a crop: the sub-pixel form of the same sums.

    ONNX Runtime has no integer kernel for ConvTranspose on the CPU, so DQ -> ConvTranspose -> Q ran in
    float in our files and in onnxruntime's quantizer's (a U-Net's upsampling, a vocoder's and
    Conv-TasNet's decoders); as a conv it runs as QLinearConv, and the shuffle and crop move int8.
    Output position n reads input j with tap n + p - j*s: the taps of phase r = (n + p) mod s are
    k[r], k[r + s], ..., a plain correlation of the input padded by K - 1 = ceil(k / s) - 1 with those
    taps reversed, per axis (a speech decoder's strides (2, 1) upsample frequency only). Not for
    dilations or symbolic sizes.
    Not for one that only feeds the model output, also through a tanh or sigmoid, either: as a conv
    its output would be rounded to 8 bits (Conv-TasNet's decoder lost 3.4 dB, DCGAN's last layer 5.3).
    """
    if only_feeds_output(node, _OUTPUT_ACTIVATIONS):
        return None
    x, w_node = node.args[:2]
    bias, stride, padding, out_pad, groups, dilation = (
        *node.args[2:],
        *(None, [1], [0], [0], 1, [1])[len(node.args) - 2 :],
    )
    d = _TRANSPOSED[node.target]
    stride, padding, out_pad, dilation = (_per_axis(v, d) for v in (stride, padding, out_pad, dilation))
    weight = _const(gm, w_node)
    b = _const(gm, bias) if isinstance(bias, Node) else None
    xv = x.meta.get("val") if isinstance(x, Node) else None
    if weight is None or (bias is not None and b is None) or xv is None or any(v != 1 for v in dilation):
        return None
    sizes = list(xv.shape[2:])
    if any(not isinstance(v, int) for v in sizes):
        return None
    k = list(weight.shape[2:])
    taps = [-(-kk // s) for kk, s in zip(k, stride)]  # K per axis
    c_out_g = weight.shape[1]
    out_sizes = [(n - 1) * s - 2 * p + kk + op for n, s, p, kk, op in zip(sizes, stride, padding, k, out_pad)]
    # phases needed per axis: the crop reads rows p .. p + out - 1 of the shuffled output
    rows = [-(-(p + o) // s) for p, o, s in zip(padding, out_sizes, stride)]
    w = _subpixel_weight(weight, stride, taps, groups)
    # whole rows of the padding p need not be computed: `skip` fewer zeros before, a shorter crop
    skip = [min(p // s, t - 1) for p, t, s in zip(padding, taps, stride)]
    before = [t - 1 - q for t, q in zip(taps, skip)]
    after = [max(r - n, 0) for r, n in zip(rows, sizes)]
    if before != after:
        pads = [v for a, z in zip(reversed(before), reversed(after)) for v in (a - min(a, z), z - min(a, z))]
        x = _call(gm, node, aten.pad.default, (x, pads, "constant", None))
    sub_bias = None if b is None else _new_constant(gm, node, b.repeat_interleave(math.prod(stride)))
    conv_args = (
        x,
        _new_constant(gm, node, w),
        sub_bias,
        [1] * d,
        [min(a, z) for a, z in zip(before, after)],
        [1] * d,
        groups,
    )
    out = _call(gm, node, CONV_BY_RANK[d + 2], conv_args)
    # the conv's output size per axis (its fake value can hold a symbol)
    conv_out = [n + a + z - t + 1 for n, a, z, t in zip(sizes, before, after, taps)]
    if d == 2:
        out = _shuffle_2d(gm, node, out, stride, (groups * c_out_g, *conv_out))
    elif stride[0] > 1:
        (s,), (n,) = stride, conv_out
        out = _call(gm, node, aten.reshape.default, (out, [-1, groups * c_out_g, s, n]))
        out = _call(gm, node, aten.transpose.int, (out, 2, 3))
        out = _call(gm, node, aten.reshape.default, (out, [-1, groups * c_out_g, n * s]))
    for axis, (s, p, q, o, n) in enumerate(zip(stride, padding, skip, out_sizes, conv_out)):
        if (p - q * s, o) != (0, n * s):
            out = _call(gm, node, aten.slice.Tensor, (out, 2 + axis, p - q * s, p - q * s + o))
    return out


def _shuffle_2d(gm: GraphModule, node: Node, x: Node, strides, chw: tuple[int, int, int]) -> Node:
    """pixel_shuffle(x, s) as two 4-D transposes, each moving one axis: columns interleaved, then
    rows (only those with a stride above 1). Exported whole it is a DepthToSpace, a 6-D transpose in
    ONNX Runtime that took 349 µs on 16 x 128 x 128 uint8 outputs against 172 µs this way (bit for
    bit the same); a U-Net with sub-pixel decoders ran 0.94x of its float-ConvTranspose file this
    way, 1.04x with DepthToSpace."""
    (sh, sw), (c, h, w) = strides, chw
    if sw > 1:
        x = _call(gm, node, aten.reshape.default, (x, [-1, sw, h, w]))
        x = _call(gm, node, aten.permute.default, (x, [0, 2, 3, 1]))
    if sh > 1:
        x = _call(gm, node, aten.reshape.default, (x, [-1, sh, h, w * sw]))
        x = _call(gm, node, aten.permute.default, (x, [0, 2, 1, 3]))
    return _call(gm, node, aten.reshape.default, (x, [-1, c, h * sh, w * sw]))


def _static_chw(shuffle: Node, x: Node) -> tuple[int, int, int] | None:
    """pixel_shuffle's output channels and input size, where they are numbers (an ESPCN's upsampler)."""
    val, s = x.meta.get("val"), shuffle.args[1]
    if val is None or val.dim() != 4 or not all(isinstance(v, int) for v in val.shape[1:]):
        return None
    return val.shape[1] // (s * s), val.shape[2], val.shape[3]


def _activation_before_moves(gm: GraphModule, node: Node) -> Node | None:
    """act(shuffle(conv(x))) -> shuffle(act(conv(x))), through any chain of value-moving ops.

    After a pixel shuffle (a sub-pixel upsampler, or a transposed conv rewritten by `_subpixel`) a ReLU
    ran in float between DQ and Q; next to its conv it folds into the conv's output Q."""
    chain, x = [], node.args[0]
    while isinstance(x, Node) and x.op == "call_function" and x.target in _MOVES and len(x.users) == 1:
        chain.append(x)
        x = x.args[0]
    if not chain or not (isinstance(x, Node) and x.target in AFFINE_FOLDABLE and len(x.users) == 1):
        return None
    out = _call(gm, node, _ELEMENTWISE[node.target], (x, *node.args[1:]))
    for move in reversed(chain):
        out = _call(gm, node, move.target, (out, *move.args[1:]))
    return out


def _roll(gm: GraphModule, node: Node) -> Node | None:
    """torch.roll over static axes as slices and a concatenation per axis (Swin's shifted windows).

    Exported whole it is Slice and Concat ops between DQ and Q; as slices (passed through) and a cat
    (quantized with one range) ONNX Runtime runs a QLinearConcat."""
    x, shifts = node.args[0], node.args[1]
    dims = node.args[2] if len(node.args) > 2 else node.kwargs.get("dims", [])
    shape = x.meta["val"].shape
    if len(dims) != len(shifts) or not all(isinstance(shape[d], int) for d in dims):
        return None
    out = x
    for shift, dim in zip(shifts, dims):
        n = shape[dim]
        if shift % n:
            tail = _call(gm, node, aten.slice.Tensor, (out, dim, n - shift % n, n))
            head = _call(gm, node, aten.slice.Tensor, (out, dim, 0, n - shift % n))
            out = _call(gm, node, aten.cat.default, ([tail, head], dim))
    return None if out is x else out


def _relu_of_cat(gm: GraphModule, node: Node) -> Node | None:
    """relu(cat(a, b, ...)) -> cat(relu(a), relu(b), ...) where the cat has no other reader.

    ONNX Runtime has no integer ReLU: after a concatenation it ran in float, and so did the pooling
    after it (ShuffleNet v1's unit). Moved to the inputs, each ReLU folds into the Q of the conv (or
    pool) before it, and the concatenation of non-negative tensors shares one range."""
    cat = node.args[0]
    if not (isinstance(cat, Node) and cat.target is aten.cat.default and len(cat.users) == 1):
        return None
    relus = [_call(gm, cat, aten.relu.default, (a,)) for a in cat.args[0]]
    return _call(gm, node, aten.cat.default, (relus, *cat.args[1:]))


_POOL_VALUES = {
    aten.max_pool2d_with_indices.default: aten.max_pool2d.default,
    aten.max_pool3d_with_indices.default: aten.max_pool3d.default,
}


def _pool_values(gm: GraphModule, node: Node) -> Node | None:
    """A max-pool with `return_indices=True` whose indices nothing reads (ENet's downsampling
    bottleneck) -> the plain max-pool. The annotator passes int8 through max_pool2d only: with indices
    the pool ran in float and so did the concatenation after it."""
    users = list(node.users)
    if not users or not all(u.target is operator.getitem and u.args[1] == 0 for u in users):
        return None
    pool = _call(gm, node, _POOL_VALUES[node.target], node.args)
    for u in users:
        _replace(gm, u, pool)
    return pool


def _is_relu_clamp(node: Node) -> bool:
    low = node.args[1] if len(node.args) > 1 else node.kwargs.get("min")
    high = node.args[2] if len(node.args) > 2 else node.kwargs.get("max")
    return high is None and isinstance(low, (int, float)) and low == 0


def _slope(x: Node, scaled) -> tuple[Node, float] | None:
    """(x, a) when `scaled` is x * a with 0 <= a < 1 and read only once."""
    if (
        isinstance(scaled, Node)
        and scaled.target is aten.mul.Tensor
        and len(scaled.users) == 1
        and scaled.args[0] is x
        and isinstance(scaled.args[1], float)
        and 0 <= scaled.args[1] < 1
    ):
        return x, scaled.args[1]
    return None


def _leaky_slope(node: Node) -> tuple[Node, float] | None:
    """(x, a) when `node` is maximum(x, x * a) (either order) with 0 <= a < 1: a LeakyReLU as ported
    TensorFlow models write it, which ran as a float Max beside a float conv (1.64x onnxruntime's
    quantizer's latency)."""
    a, b = node.args[:2]
    return _slope(a, b) or _slope(b, a)


def _where_leaky(node: Node) -> tuple[Node, float] | None:
    """(x, a) when `node` is where(x > 0, x, x * a) or where(x < 0, x * a, x) with 0 <= a < 1."""
    cond, first, second = node.args[:3]
    if not (isinstance(cond, Node) and len(cond.args) == 2 and cond.args[1] in (0, 0.0)):
        return None
    x = cond.args[0]
    if cond.target in (aten.gt.Scalar, aten.ge.Scalar) and first is x:
        return _slope(x, second)
    if cond.target in (aten.lt.Scalar, aten.le.Scalar) and second is x:
        return _slope(x, first)
    return None


def _leaky(node: Node) -> tuple[Node, float] | None:
    if node.target is aten.maximum.default:
        return _leaky_slope(node)
    return _where_leaky(node) if node.target is aten.where.self else None


def _stack(gm: GraphModule, node: Node) -> Node:
    """stack -> unsqueeze each and concatenate: a cat runs as a QLinearConcat; the stack itself had no
    int8 form and kept both it and the unbind after it in float."""
    dim = _stack_dim(node)
    pieces = [_call(gm, node, aten.unsqueeze.default, (t, dim)) for t in node.args[0]]
    return _call(gm, node, aten.cat.default, (pieces, dim))


def _stack_dim(node: Node) -> int:
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    return dim % node.meta["val"].dim()


def _averaged_stack(mean: Node) -> Node | None:
    """The stack that `mean` alone reads and averages over its stacking axis, else None."""
    st = mean.args[0]
    if mean.target is not aten.mean.dim or not isinstance(st, Node) or st.target is not aten.stack.default:
        return None
    dims, keepdim = mean.args[1], (mean.args[2] if len(mean.args) > 2 else mean.kwargs.get("keepdim", False))
    if len(st.users) != 1 or keepdim or mean.kwargs.get("dtype") is not None or len(dims) != 1:
        return None
    return st if dims[0] % st.meta["val"].dim() == _stack_dim(st) else None


def _mean_of_stack(gm: GraphModule, mean: Node, st: Node) -> Node:
    """stack(xs, d).mean(d) -> (x1 + ... + xn) * (1 / n). TimesNet's Inception block averages six convs
    so: a stack on the last axis is a QLinearConcat whose rows are one element wide, and ONNX Runtime
    copies them with one memcpy each (17 ms of a 25 ms block); as adds each runs as a QLinearAdd and the
    scaling only relabels a scale."""
    xs = st.args[0]
    total = xs[0]
    for x in xs[1:]:
        total = _call(gm, mean, aten.add.Tensor, (total, x))
    return _call(gm, mean, aten.mul.Tensor, (total, 1.0 / len(xs)))


# in-place activations (nn.Hardswish(inplace=True) in torchvision's MobileNetV3, nn.SiLU(inplace=True)
# in YOLOv5) -> their functional forms, which decompose_for_int8 splits up
_FUNCTIONAL = {
    aten.hardswish_.default: aten.hardswish.default,
    aten.hardsigmoid_.default: aten.hardsigmoid.default,
    aten.silu_.default: aten.silu.default,
    aten.mish_.default: aten.mish.default,
    aten.leaky_relu_.default: aten.leaky_relu.default,
}
_IN_PLACE = {aten.relu_.default, aten.hardtanh_.default, aten.clamp_.default, aten.mul_.Tensor, *_FUNCTIONAL}


def _bounds(node: Node) -> tuple[float | None, float | None] | None:
    """(low, high) of a ReLU, hard-tanh or clamp with number bounds; None for anything else."""
    if node.target in (aten.relu.default, aten.relu_.default):
        return 0.0, None
    if node.target in (aten.hardtanh.default, aten.hardtanh_.default):
        return tuple(node.args[1:3]) + (-1.0, 1.0)[len(node.args) - 1 :]
    if node.target in (aten.clamp.default, aten.clamp_.default):
        low = node.args[1] if len(node.args) > 1 else node.kwargs.get("min")
        high = node.args[2] if len(node.args) > 2 else node.kwargs.get("max")
        if all(b is None or isinstance(b, (int, float)) for b in (low, high)):
            return low, high
    return None


def _alone_in_place(node: Node) -> bool:
    """An in-place op (relu_ then clamp_ in a user's forward) whose input nothing else reads: made
    functional, no other reader can see the difference."""
    x = node.args[0] if node.args else None
    return node.target not in _IN_PLACE or isinstance(x, Node) and len(x.users) == 1


def _relu6_as_hardtanh(gm: GraphModule) -> int:
    """F.relu6 exports as aten.relu6, which no annotator matched (nn.ReLU6 exports as hardtanh): the
    conv before it kept a signed output range and the Clip ran in float (a Keras-style net 1.2 dB
    under onnxruntime's quantizer on 256 new inputs)."""
    nodes = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in _RELU6]
    for node in nodes:
        node.target, node.args = _RELU6[node.target], (node.args[0], 0.0, 6.0)
    return len(nodes)


_RELU6 = {aten.relu6.default: aten.hardtanh.default, aten.relu6_.default: aten.hardtanh_.default}


def merge_clamps(gm: GraphModule) -> int:
    """clamp(relu(x), max=6) and relu -> hard-tanh chains become one clamp, and a clamp after a
    multiply by c > 0 moves before it (bounds / c); returns how many clamps were merged or moved.

    The annotator folds one activation into the Q of the op before it; a second one (in-place code
    writes relu_() then clamp_(max=6)) ran as a float Clip, with the pooling after it."""
    count = 0
    changed = True
    while changed:
        changed = False
        for node in list(gm.graph.nodes):
            outer = _bounds(node) if node.op == "call_function" else None
            src = node.args[0] if outer else None
            if not (isinstance(src, Node) and len(src.users) == 1 and _alone_in_place(src)):
                continue
            inner = _bounds(src)
            scaling = src.target in (aten.mul.Tensor, aten.mul_.Tensor) and len(src.args) > 1
            c = src.args[1] if scaling else None
            if inner is not None:
                low = max((b for b in (outer[0], inner[0]) if b is not None), default=None)
                high = min((b for b in (outer[1], inner[1]) if b is not None), default=None)
                new = _call(gm, node, aten.clamp.default, (src.args[0], low, high))
            elif isinstance(c, (int, float)) and c > 0 and isinstance(src.args[0], Node):
                low, high = (None if b is None else b / c for b in outer)
                moved = _call(gm, src, aten.clamp.default, (src.args[0], low, high))
                new = _call(gm, node, aten.mul.Tensor, (moved, c))
            else:
                continue
            _replace(gm, node, new)
            gm.graph.erase_node(src)
            count += 1
            changed = True
    if count:
        gm.recompile()
    return count


def decompose_for_int8(gm: GraphModule, qat: bool = False) -> int:
    """SiLU -> x * sigmoid(x), Mish -> x * tanh(softplus(x)), hard-swish -> x * hard-sigmoid(x)
    (hard-sigmoid itself as below), PReLU with one slope -> LeakyReLU, GLU -> half * sigmoid(other
    half), add(x, y, alpha) -> x + y * alpha, a depthwise conv with a channel multiplier -> repeat +
    depthwise, an average pool -> a depthwise conv, a roll -> slices and a concatenation, a ReLU of a
    concatenation -> one of ReLUs, maximum(x, a x) and where(x > 0, x, a x) -> LeakyReLU, clamp(min=0)
    -> ReLU, stack -> unsqueeze + cat (averaged over its axis: a sum), a max-pool whose indices
    nothing reads -> one without; chains of clamps merged first (`merge_clamps`). The in-place hard-swish, hard-sigmoid, Mish and
    SiLU too, where nothing else reads their input.

    ONNX Runtime has no integer PRelu but a QLinearLeakyRelu, the same function for a single slope (QAT
    then keeps that slope fixed).

    Exported whole, each is one float op between DQ and Q; split up, ONNX Runtime runs the sigmoid and
    the multiply as QLinear kernels, as onnxruntime's own quantizer gets from a float ONNX file where the
    exporter has already split them. scaled_dot_product_attention is left whole on purpose: split into
    int8 matmuls and softmax, a ViT-tiny ran 0.98x of onnxruntime's quantizer instead of 0.91x.
    """
    count = _relu6_as_hardtanh(gm) + merge_clamps(gm)
    for node in list(gm.graph.nodes):
        if node.op != "call_function":
            continue
        x = node.args[0]
        target = _FUNCTIONAL.get(node.target, node.target) if _alone_in_place(node) else node.target
        if target is aten.hardswish.default:
            new = _call(gm, node, aten.mul.Tensor, (x, _hardsigmoid(gm, node, x)))
        elif target is aten.hardsigmoid.default:
            new = _hardsigmoid(gm, node, x)
        elif target is aten.silu.default:
            new = _call(gm, node, aten.mul.Tensor, (x, _call(gm, node, aten.sigmoid.default, (x,))))
        elif target is aten.mish.default:
            # as YOLOv4 code writes it: exported whole (ONNX Mish) the multiply stayed float, and
            # so did the concatenation it fed; its softplus is rewritten (onnx_passes.fast_softplus)
            t = _call(gm, node, aten.tanh.default, (_call(gm, node, aten.softplus.default, (x,)),))
            new = _call(gm, node, aten.mul.Tensor, (x, t))
        elif node.target is aten.prelu.default and (slope := _scalar_slope(gm, node)) is not None:
            new = _call(gm, node, aten.leaky_relu.default, (x, slope))
        elif (m := _channel_multiplier(node)) is not None:
            new = _depthwise(gm, node, m)
        elif node.target is aten.glu.default and (glu := _glu(gm, node)) is not None:
            new = glu
        elif (window := _pool_window(node)) is not None:
            new = _avg_pool_as_conv(gm, node, window)
        elif node.target in _TRANSPOSED and not qat and (sub := _subpixel(gm, node)) is not None:
            new = sub
        elif node.target is aten.pixel_shuffle.default and (chw := _static_chw(node, x)) is not None:
            new = _shuffle_2d(gm, node, x, (node.args[1],) * 2, chw)
        elif node.target in _ELEMENTWISE and (moved := _activation_before_moves(gm, node)) is not None:
            new = moved
        elif node.target is aten.roll.default and (rolled := _roll(gm, node)) is not None:
            new = rolled
        elif node.target is aten.relu.default and (relus := _relu_of_cat(gm, node)) is not None:
            new = relus
        elif node.target is aten.clamp.default and _is_relu_clamp(node):
            # exported as Max(x, 0), which ONNX Runtime does not fold into the conv before it as it
            # folds Relu: the conv ran in float
            new = _call(gm, node, aten.relu.default, (x,))
        elif (slope := _leaky(node)) is not None:
            new = _call(gm, node, aten.leaky_relu.default, slope)
        elif target is aten.leaky_relu.default and node.target is not target:
            # nn.LeakyReLU(inplace=True) (ESRGAN): only the functional form gets its own range; before
            # an upsample the in-place one ran in float, and the upsample after it
            new = _call(gm, node, target, tuple(node.args))
        elif node.target is aten.stack.default and not any(_averaged_stack(u) for u in node.users):
            new = _stack(gm, node)
        elif (st := _averaged_stack(node)) is not None:
            new = _mean_of_stack(gm, node, st)
        elif node.target in _POOL_VALUES and (pool := _pool_values(gm, node)) is not None:
            new = pool
        elif node.target is aten.add.Tensor and node.kwargs.get("alpha", 1) != 1:
            # exported as Mul then Add, the Mul sat between DQ and the Add and kept it float; as
            # its own node it is a scaling the annotator relabels
            scaled = _call(gm, node, aten.mul.Tensor, (node.args[1], node.kwargs["alpha"]))
            new = _call(gm, node, aten.add.Tensor, (x, scaled))
        else:
            continue
        _replace(gm, node, new)
        count += 1
    if count:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return count


_FACTORIES = {
    aten.arange.default,
    aten.arange.start,
    aten.arange.start_step,
    aten.zeros.default,
    aten.ones.default,
    aten.full.default,
    aten.linspace.default,
    aten.eye.default,
}


def _factories_as_constants(gm: GraphModule) -> None:
    """arange, zeros, ones ... of fixed sizes become buffers, so what is computed from them folds too:
    a sinusoidal position table built in forward ran as float Sin, Cos and Concat on every call (1.18x
    onnxruntime's quantizer's latency, whose pre-processing folds it)."""
    for node in list(gm.graph.nodes):
        if node.target in _FACTORIES and not any(
            isinstance(a, Node) for a in tree_leaves((node.args, node.kwargs))
        ):
            _functional_fill(node)
            node.replace_all_uses_with(_new_constant(gm, node, node.target(*node.args, **node.kwargs)))
            gm.graph.erase_node(node)


def _functional_fill(factory: Node) -> None:
    """An in-place op that alone reads a factory (HF's causal mask: torch.full(...).masked_fill_(...))
    becomes its out-of-place form. On the buffer the factory becomes, constant folding ran the in-place
    op and stored the view after it as a second constant sharing the buffer's storage; the mutation
    stayed in the graph, and torch's ONNX exporter failed on the int8 model ("expected compiled_fn to
    be GraphModule") for OPT, Phi and Qwen2 shapes."""
    if len(factory.users) != 1:
        return
    user = next(iter(factory.users))
    target = user.target
    if not isinstance(target, torch._ops.OpOverload) or not user.args or user.args[0] is not factory:
        return
    name = target._schema.name.split("::")[-1]
    if not name.endswith("_") or name.startswith("_"):
        return
    packet = getattr(torch.ops.aten, name[:-1], None)
    functional = getattr(packet, target._overloadname, None) if packet is not None else None
    if functional is not None and not functional._schema.is_mutable:
        user.target = functional


def fold_parameter_math(gm: GraphModule) -> int:
    """Ops that read only parameters and constants become constants; then a multiply or divide by a
    one-element positive constant becomes one by a Python number; returns how many such multiplies.

    EfficientDet's fused features weigh each input by relu(w)[i] / (sum(relu(w)) + eps), computed from
    a parameter on every run: the multiplies ran as QLinearMul and the sums in float, 1.12x the latency
    of onnxruntime's quantizer (whose pre-processing folds them). As numbers, each multiply or divide
    only relabels a scale (`quantizers._scaling_factor`). Not for QAT, which trains those parameters.
    Without grad: folded from a weight, a constant kept its autograd history, and deepcopy (the held-out
    calibration copy) refused the model (PixelCNN's weight * mask, weight standardisation).
    """
    with torch.no_grad():
        _factories_as_constants(gm)
        constant_fold(gm)
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in (aten.mul.Tensor, aten.div.Tensor):
            continue
        a, b = node.args[:2]
        ca, cb = (_scalar_constant(gm, x) for x in (a, b))
        if cb is not None and isinstance(a, Node) and ca is None:
            node.args = (a, cb, *node.args[2:])
        elif ca is not None and isinstance(b, Node) and cb is None and node.target is aten.mul.Tensor:
            node.args = (b, ca, *node.args[2:])
        else:
            continue
        count += 1
    with torch.no_grad():
        count += linears_from_matmuls(gm)
        count += fold_channel_affines(gm)
    if count:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return count


def _adds_constant(gm: GraphModule, add: Node | None, x: Node) -> bool:
    return (
        add is not None
        and add.target is aten.add.Tensor
        and not add.kwargs
        and add.args[0] is x
        and _const(gm, add.args[1]) is not None
    )


def linears_from_matmuls(gm: GraphModule) -> int:
    """x @ W (+ b) and addmm(b, x, W) with a constant W -> linear(x, W.T, b); returns how many.

    Linears written by hand (x @ self.w.T + self.b, torch.addmm) quantized W as an activation (per
    tensor, uint8) and left the addmm a float Gemm: 0.9 dB under onnxruntime's quantizer, which treats
    a constant MatMul operand as weights. As a linear it gets per-channel int8 weights and an int32 bias."""
    count = 0
    for node in list(gm.graph.nodes):
        if node.target is aten.addmm.default and not node.kwargs:
            bias, x, w = node.args[:3]
        elif node.target in (aten.matmul.default, aten.mm.default):
            (x, w), bias = node.args[:2], None
            if _linear_of_columns(gm, node):
                count += 1
                continue
        elif node.target is aten.tensordot.default and _last_with_first(node):
            # tensordot(x, W, dims=([-1], [0])) (AutoInt's projections): a float MatMul otherwise
            (x, w), bias = node.args[:2], None
        else:
            continue
        wt = _const(gm, w)
        xv = x.meta.get("val") if isinstance(x, Node) and x.op != "get_attr" else None
        if wt is None or wt.dim() != 2 or not isinstance(xv, torch.Tensor) or xv.dim() < 2:
            continue
        last = node
        add = next(iter(node.users)) if len(node.users) == 1 else None
        if bias is None and _adds_constant(gm, add, node):
            bias, last = add.args[1], add
        b = _const(gm, bias)
        if bias is not None and (b is None or b.shape != (wt.shape[1],)):
            continue
        weight = _new_constant(gm, node, wt.t().contiguous())
        new = _call(gm, last, aten.linear.default, (x, weight) if bias is None else (x, weight, bias))
        last.replace_all_uses_with(new)
        for old in dict.fromkeys((last, node)):
            gm.graph.erase_node(old)
        count += 1
    return count


def _last_with_first(node: Node) -> bool:
    """A tensordot that contracts its first operand's last axis with its second's first: x @ W."""
    x = node.args[0].meta.get("val") if isinstance(node.args[0], Node) else None
    a, b = (list(d) for d in node.args[2:4])
    return isinstance(x, torch.Tensor) and a in ([-1], [x.dim() - 1]) and b == [0]


def _linear_of_columns(gm: GraphModule, node: Node) -> bool:
    """W @ x (+ b) with a constant W [m, k] and x a batch of column vectors [..., k, 1] (DeepCTR's
    DCN-v2 cross network: kernels[i] @ x_l + bias[i]) -> linear(x.squeeze(-1), W, b).unsqueeze(-1).

    A MatMul with the constant on the left ran in ONNX Runtime as one [m, k] x [k, 1] product per
    sample: 1.9 ms per layer at batch 64, k = 205, ten times its float MatMul, and the model at 3.3x
    onnxruntime's quantizer (which keeps those MatMuls float)."""
    w, x = node.args[:2]
    wt = _const(gm, w)
    xv = x.meta.get("val") if isinstance(x, Node) and x.op != "get_attr" else None
    if wt is None or wt.dim() != 2 or not isinstance(xv, torch.Tensor) or xv.dim() < 3 or xv.shape[-1] != 1:
        return False
    last, bias = node, None
    add = next(iter(node.users)) if len(node.users) == 1 else None
    if _adds_constant(gm, add, node) and _const(gm, add.args[1]).shape == (wt.shape[0], 1):
        bias, last = _const(gm, add.args[1]).reshape(-1), add
    args = (_call(gm, node, aten.squeeze.dim, (x, -1)), _new_constant(gm, node, wt.contiguous()))
    if bias is not None:
        args += (_new_constant(gm, node, bias.contiguous()),)
    new = _call(gm, last, aten.unsqueeze.default, (_call(gm, last, aten.linear.default, args), -1))
    last.replace_all_uses_with(new)
    for old in dict.fromkeys((last, node)):
        gm.graph.erase_node(old)
    return True


def fold_channel_affines(gm: GraphModule) -> int:
    """conv(x) * g + b, and linear(x) * g, with constant per-output-channel g and b -> one conv or
    linear with scaled weights and bias; returns how many multiplies and adds were folded.

    Caffe's Scale layers and LayerScale (ConvNeXt, CaiT) multiply a conv's or a linear's output by a
    learned vector: a QLinearMul over the whole tensor, 1.42x onnxruntime's quantizer's latency on a
    FiLM-style net (its pre-processing folds them into the conv, as ONNX Runtime's optimiser does)."""
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in AFFINE_FOLDABLE or len(node.users) != 1:
            continue  # (a transposed conv keeps its output channels on the weight's axis 1)
        weight = node.args[1]
        user = next(iter(node.users))
        if not (isinstance(weight, Node) and weight.op == "get_attr" and len(weight.users) == 1):
            continue
        while user is not None and (found := _channel_constant(gm, node, user)) is not None:
            op, value = found
            w = _const(gm, weight)
            bias = node.args[2] if len(node.args) > 2 else None
            b = _const(gm, bias) if isinstance(bias, Node) else torch.zeros(value.numel(), dtype=w.dtype)
            if b is None or isinstance(bias, Node) and len(bias.users) != 1:
                break
            if op is aten.mul.Tensor:
                w, b = w * value.reshape(-1, *[1] * (w.dim() - 1)).to(w.dtype), b * value.to(b.dtype)
            else:
                b = b + value.to(b.dtype) * (1 if op is aten.add.Tensor else -1)
            _set_param(gm, weight.target, w)
            if isinstance(bias, Node):
                _set_param(gm, bias.target, b)
            else:
                name = f"{weight.target}_folded_bias".replace(".", "_")
                _set_param(gm, name, b)
                with gm.graph.inserting_after(weight):
                    bias = gm.graph.get_attr(name)
                bias.meta["val"] = b
                node.args = (node.args[0], weight, bias, *node.args[3:])
            user.replace_all_uses_with(node)
            gm.graph.erase_node(user)
            count += 1
            user = next(iter(node.users)) if len(node.users) == 1 else None
    return count


def _channel_constant(gm: GraphModule, op: Node, user: Node):
    """(mul, add or sub, the per-channel vector) when `user` multiplies, adds or subtracts `op`'s output
    and a constant of one value per output channel (or one value), else None."""
    if user.op != "call_function" or user.target not in (aten.mul.Tensor, aten.add.Tensor, aten.sub.Tensor):
        return None
    if user.kwargs.get("alpha", 1) != 1 or len(user.args) != 2:
        return None
    a, b = user.args
    other = b if a is op else a if user.target is not aten.sub.Tensor else None
    value = _const(gm, other) if isinstance(other, Node) and other.op == "get_attr" else None
    if isinstance(other, (int, float)) and not isinstance(other, bool):
        value = torch.tensor(float(other))
    out = op.meta.get("val")
    if value is None or not isinstance(out, torch.Tensor) or not value.is_floating_point():
        return None
    channels = out.shape[-1] if op.target is aten.linear.default else out.shape[1]
    axis = out.dim() - 1 if op.target is aten.linear.default else 1
    if value.numel() == 1:
        return user.target, value.reshape(1).expand(channels).clone()
    if value.dim() > out.dim() or value.numel() != channels:
        return None
    lead = out.dim() - value.dim()
    if axis < lead or value.shape[axis - lead] != channels:
        return None  # a vector that broadcasts along another axis
    return user.target, value.reshape(-1)


def _scalar_constant(gm: GraphModule, node) -> float | None:
    """The value of a one-element positive constant (a negative one stays a tensor, which the
    annotator quantizes as an operand)."""
    value = _const(gm, node) if isinstance(node, Node) and node.op == "get_attr" else None
    if not isinstance(value, torch.Tensor) or value.numel() != 1 or not value.is_floating_point():
        return None
    number = float(value.reshape(-1)[0])
    return number if number > 0 else None


_CONV_WITH_PADDING_MODE = {
    aten.conv1d.padding: aten.conv1d.default,
    aten.conv2d.padding: aten.conv2d.default,
    aten.conv3d.padding: aten.conv3d.default,
}


def explicit_conv_padding(gm: GraphModule) -> int:
    """conv(padding="same" | "valid") -> a conv with numbers for padding; where "same" needs an odd
    total (an even kernel), torch pads the extra zero on the far side, written here as a zero pad
    before the conv.

    Every annotator matches the numeric overload only: a ConvMixer's depthwise convs, written with
    padding="same", stayed float with float weights (onnxruntime's quantizer, which reads the exported
    file, ran them in int8), and a BatchNorm after such a conv was not folded.
    """
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in _CONV_WITH_PADDING_MODE:
            continue
        x, weight, bias, stride, mode, dilation, groups = (
            *node.args,
            *(node.kwargs.get(k, d) for k, d in list(_PADDING_DEFAULTS.items())[len(node.args) :]),
        )
        spatial = weight.meta["val"].dim() - 2
        dilation = list(dilation) * spatial if len(dilation) == 1 else list(dilation)
        totals = [0] * spatial
        if mode == "same":
            totals = [d * (k - 1) for d, k in zip(dilation, weight.meta["val"].shape[2:])]
        if any(t % 2 for t in totals):
            far_side = [v for t in reversed(totals) for v in (0, t % 2)]  # F.pad order: last dim first
            x = _call(gm, node, aten.pad.default, (x, far_side, "constant", None))
        args = (x, weight, bias, stride, [t // 2 for t in totals], dilation, groups)
        new = _call(gm, node, _CONV_WITH_PADDING_MODE[node.target], args)
        _replace(gm, node, new)
        count += 1
    if count:
        gm.recompile()
    return count


# the .padding overloads' arguments after input and weight, with their defaults
_PADDING_DEFAULTS = {
    "input": None,
    "weight": None,
    "bias": None,
    "stride": [1],
    "padding": "valid",
    "dilation": [1],
    "groups": 1,
}


def views_as_reshapes(gm: GraphModule) -> int:
    """aten.view -> aten.reshape, which is the same view wherever the strides allow one.

    Export drops a .contiguous() that was a no-op for the strides it saw, so a captured view can rely on
    the exporting device's memory layout. On an H200, nn.TransformerEncoderLayer exported on the CPU
    failed to calibrate ("view size is not compatible with input tensor's size and stride") because
    CUDA's attention kernel returns another layout.
    """
    nodes = [n for n in gm.graph.nodes if n.op == "call_function" and n.target == aten.view.default]
    for node in nodes:
        node.target = aten.reshape.default
    if nodes:
        gm.recompile()
    return len(nodes)


def _conv_parts(gm: GraphModule, node: Node):
    """(input, weight, bias, stride, padding, dilation, groups) of a conv with constant weight and bias
    and numeric padding, else None."""
    if node.op != "call_function" or node.target not in CONV_BY_RANK.values():
        return None
    d = CONV_SPATIAL_DIMS[node.target]
    x, w, b, stride, padding, dilation, groups = (
        *node.args,
        *(None, [1], [0], [1], 1)[len(node.args) - 2 :],
    )
    weight, bias = _const(gm, w), _const(gm, b) if isinstance(b, Node) else None
    if weight is None or (b is not None and bias is None):
        return None
    if bias is None:
        bias = torch.zeros(weight.shape[0], dtype=weight.dtype)
    stride, padding, dilation = (_per_axis(v, d) for v in (stride, padding, dilation))
    return x, weight, bias, stride, padding, dilation, groups


def _merged_conv(gm: GraphModule, add: Node) -> Node | None:
    """conv_a(x) + conv_b(x) with the same kernel shape and settings -> one conv, kernels summed.

    Not a 1x1 branch into a 3x3 one (RepVGG's): it widens the centre taps' range, and merged a RepVGG
    read 35.6 dB against 38.7 apart (onnxruntime's quantizer 38.4)."""
    a, b = add.args[:2]
    if not (isinstance(a, Node) and isinstance(b, Node) and len(a.users) == 1 and len(b.users) == 1):
        return None
    pa, pb = _conv_parts(gm, a), _conv_parts(gm, b)
    if pa is None or pb is None or pa[0] is not pb[0] or pa[1].shape != pb[1].shape or pa[3:] != pb[3:]:
        return None
    x, wa, ba, *settings = pa
    weight, bias = _new_constant(gm, add, wa + pb[1]), _new_constant(gm, add, ba + pb[2])
    return _call(gm, add, a.target, (x, weight, bias, *settings))


def merge_parallel_convs(gm: GraphModule) -> int:
    """Convs that read the same input and whose outputs are added -> one conv.

    MobileOne trains with k parallel conv-BN branches of one kernel size, which it merges for
    deployment; saved in its training form, each branch ran as its own QLinearConv plus a QLinearAdd:
    with k = 4, 0.80x of onnxruntime's quantizer and 32.9 dB, merged 0.36x and 33.7 dB (onnxruntime's
    32.2). Runs after the BNs are folded."""
    count = 0
    changed = True
    while changed:
        changed = False
        for node in list(gm.graph.nodes):
            if (
                node.op != "call_function"
                or node.target is not aten.add.Tensor
                or node.kwargs.get("alpha", 1) != 1
            ):
                continue
            if (new := _merged_conv(gm, node)) is not None:
                _replace(gm, node, new)
                count += 1
                changed = True
    if count:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return count


def prepare_graph(gm: GraphModule, own_annotator: bool, qat: bool = False) -> int:
    """All rewrites, in place; returns how many lone batch-norms became convs.

    The int8-shaped rewrites only for our own annotator: torchao's inductor quantizers find a Linear by
    its module and expect the linear op itself to be that module's output, and Inductor fuses SiLU
    itself.
    """
    explicit_conv_padding(gm)
    split_shared_module_calls(gm)
    fold_conv_bn(gm)
    global_pool_as_mean(gm)
    if own_annotator:
        if not qat:
            fold_parameter_math(gm)
        linear_as_2d(gm)
        decompose_for_int8(gm, qat)
        if not qat:
            merge_parallel_convs(gm)
    return bn_to_depthwise_conv(gm)
