"""Rewrites of the captured graph before annotation: the float model's outputs must not change."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.engine import graph_passes


def _prepared(model: nn.Module, x: torch.Tensor):
    """The captured graph after every pre-annotation rewrite, and the float model's output."""
    want = model(x)
    gm = torch.export.export(model, (x,)).module()
    graph_passes.prepare_graph(gm, own_annotator=True)
    return gm, want


def _targets(gm) -> list:
    return [n.target for n in gm.graph.nodes if n.op == "call_function"]


class ScaledConvs(nn.Module):
    """A conv and a transposed conv, each followed by a per-channel scale parameter."""

    def __init__(self):
        super().__init__()
        self.conv, self.up = nn.Conv2d(3, 4, 3, padding=1), nn.ConvTranspose2d(4, 6, 2, 2)
        self.h, self.g = (
            nn.Parameter(torch.rand(1, 4, 1, 1) + 0.5),
            nn.Parameter(torch.rand(1, 6, 1, 1) + 0.5),
        )

    def forward(self, x):
        return self.up(self.conv(x) * self.h) * self.g


def test_channel_scales_fold_into_convs_but_not_transposed_ones():
    # a transposed conv keeps its output channels on the weight's axis 1: scaling axis 0 was wrong
    torch.manual_seed(0)
    model, x = ScaledConvs().eval(), torch.randn(2, 3, 8, 8)
    gm, want = _prepared(model, x)
    ops = _targets(gm)
    assert ops.count(torch.ops.aten.mul.Tensor) == 1, ops  # the transposed conv's
    torch.testing.assert_close(gm(x), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model(x), want)  # the float model's parameters were left alone


class MaskedConv(nn.Conv2d):
    """PixelCNN's masked conv: the weight times a constant mask on every call."""

    def __init__(self):
        super().__init__(2, 4, 3, padding=1)
        mask = torch.ones_like(self.weight)
        mask[:, :, 1, 1:] = mask[:, :, 2:] = 0
        self.register_buffer("mask", mask)

    def forward(self, x):
        return nn.functional.conv2d(x, self.weight * self.mask, self.bias, padding=1)


def test_folded_parameter_math_leaves_plain_tensors():
    # folded from a trainable weight, a constant kept its autograd history: deepcopy of the prepared
    # model (the held-out calibration copy) raised "Only Tensors created explicitly by the user"
    import copy

    torch.manual_seed(0)
    model, x = MaskedConv().eval(), torch.randn(2, 2, 6, 6)
    gm, want = _prepared(model, x)
    assert all(t.grad_fn is None for t in [*gm.parameters(), *gm.buffers()])
    torch.testing.assert_close(copy.deepcopy(gm)(x), want)


class ActivationIdioms(nn.Module):
    """Hand-written activations: relu_ then a scale then clamp_(max), where(x > 0, x, a x), stack/unbind."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = self.a(x)
        y.relu_()
        y.mul_(0.5)
        y.clamp_(max=1.0)
        y = torch.where(y > 0, y, 0.1 * y) + torch.where(
            x.mean(1, keepdim=True) < 0, 0.2 * x[:, :1], x[:, :1]
        )
        p, q = torch.stack([self.b(y), self.c(y)], 1).unbind(1)
        return p - q


def test_activation_idioms_become_ops_the_annotator_folds():
    torch.manual_seed(0)
    model, x = ActivationIdioms().eval(), torch.randn(2, 3, 8, 8) * 3
    gm, want = _prepared(model, x)
    ops = _targets(gm)
    aten = torch.ops.aten
    # relu, x 0.5, clamp(max=1) -> clamp(0, 2) then x 0.5: one clamp right after the conv
    clamp = next(n for n in gm.graph.nodes if n.target is aten.clamp.default)
    assert clamp.args[0].target is aten.conv2d.default and clamp.args[1:] == (0.0, 2.0)
    assert aten.relu.default not in ops and aten.stack.default not in ops
    # the second where() masks by another tensor's sign: no LeakyReLU
    assert ops.count(aten.leaky_relu.default) == 1 and ops.count(aten.where.self) == 1
    assert ops.count(aten.cat.default) == 1
    torch.testing.assert_close(gm(x), want)


def test_relu_after_a_token_linear_moves_next_to_it():
    # after the reshape back it ran as a float Relu between DQ and Q (and the mean after it too)
    torch.manual_seed(0)
    model, x = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4)).eval(), torch.randn(2, 5, 6)
    gm, want = _prepared(model, x)
    aten = torch.ops.aten
    relu = next(n for n in gm.graph.nodes if n.target is aten.relu.default)
    assert relu.args[0].target is aten.linear.default and relu.meta["val"].dim() == 2
    torch.testing.assert_close(gm(x), want)


class HandWrittenLinears(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1, self.b1 = nn.Parameter(torch.randn(16, 8)), nn.Parameter(torch.randn(16))
        self.w2, self.b2 = nn.Parameter(torch.randn(16, 4)), nn.Parameter(torch.randn(4))
        self.w3 = nn.Parameter(torch.randn(4, 3))

    def forward(self, x):
        return torch.addmm(self.b2, torch.relu(x @ self.w1.T + self.b1), self.w2) @ self.w3


def test_hand_written_linears_become_linears():
    # x @ W.T + b quantized W as an activation and addmm stayed a float Gemm
    torch.manual_seed(0)
    model, x = HandWrittenLinears().eval(), torch.randn(5, 8)
    gm, want = _prepared(model, x)
    ops = _targets(gm)
    aten = torch.ops.aten
    assert ops.count(aten.linear.default) == 3 and aten.addmm.default not in ops, ops
    assert aten.matmul.default not in ops and aten.add.Tensor not in ops, ops
    torch.testing.assert_close(gm(x), want, rtol=1e-5, atol=1e-4)


class CrossNet(nn.Module):
    """DeepCTR's DCN-v2 cross layers: kernels[i] @ x_l + bias[i] on column vectors."""

    def __init__(self, d=6, layers=2):
        super().__init__()
        self.kernels = nn.Parameter(torch.randn(layers, d, d))
        self.bias = nn.Parameter(torch.randn(layers, d, 1))

    def forward(self, x):
        x0 = xl = x.unsqueeze(2)
        for i in range(self.kernels.shape[0]):
            xl = x0 * (torch.matmul(self.kernels[i], xl) + self.bias[i]) + xl
        return xl.squeeze(2)


def test_constant_times_column_vectors_becomes_a_linear():
    # W @ x on [B, k, 1] ran as one tiny QLinearMatMul per sample: 3.3x onnxruntime's quantizer
    torch.manual_seed(0)
    model, x = CrossNet().eval(), torch.randn(5, 6)
    gm, want = _prepared(model, x)
    ops = _targets(gm)
    aten = torch.ops.aten
    assert ops.count(aten.linear.default) == 2 and aten.matmul.default not in ops, ops
    assert ops.count(aten.add.Tensor) == 2, ops  # the residuals; each bias went into its linear
    torch.testing.assert_close(gm(x), want, rtol=1e-5, atol=1e-5)


class TensordotProjection(nn.Module):
    """AutoInt's interacting layer projects field embeddings with tensordot on a raw parameter."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 6))

    def forward(self, x):
        return torch.relu(torch.tensordot(x, self.w, dims=([-1], [0])))


def test_tensordot_with_a_weight_becomes_a_linear():
    # exported as Reshape + float MatMul + Reshape between DQ and Q
    torch.manual_seed(0)
    model, x = TensordotProjection().eval(), torch.randn(2, 5, 6)
    gm, want = _prepared(model, x)
    ops = _targets(gm)
    assert torch.ops.aten.linear.default in ops and torch.ops.aten.tensordot.default not in ops, ops
    torch.testing.assert_close(gm(x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("channels", "pool"), [(7, True), (8, False)])
def test_average_pool_over_few_channels_stays_a_pool(channels, pool):
    # ONNX Runtime's int8 depthwise conv over fewer than 8 channels is slower than its pool (DLinear)
    model, x = nn.AvgPool1d(25, stride=1).eval(), torch.randn(2, channels, 40)
    gm, want = _prepared(model, x)
    ops = _targets(gm)
    assert (torch.ops.aten.avg_pool1d.default in ops) is pool, ops
    torch.testing.assert_close(gm(x), want)


class SamePadding(nn.Module):
    """padding="same" with odd and even kernels and a dilation, "valid", each conv followed by a BN."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(4, 4, 7, groups=4, padding="same")
        self.even = nn.Conv2d(4, 6, (4, 3), padding="same", dilation=(1, 2), bias=False)
        self.valid = nn.Conv2d(6, 5, 3, padding="valid")
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in (4, 6, 5))
        for bn in self.bns:
            nn.init.uniform_(bn.running_mean, -1, 1), nn.init.uniform_(bn.running_var, 0.5, 2)

    def forward(self, x):
        for conv, bn in zip((self.dw, self.even, self.valid), self.bns):
            x = bn(conv(x))
        return x


class RepBlock(nn.Module):
    """RepVGG's (dense) or MobileOne's (depthwise) training form: parallel conv-BN branches and an
    identity BN, summed."""

    def __init__(self, c: int, groups: int = 1, branches: int = 1):
        super().__init__()

        def conv_bn(k):
            return nn.Sequential(nn.Conv2d(c, c, k, 1, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c))

        self.kxk = nn.ModuleList(conv_bn(3) for _ in range(branches))
        self.scale, self.identity = conv_bn(1), nn.BatchNorm2d(c)
        for bn in [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]:
            nn.init.uniform_(bn.weight, 0.5, 1.5), nn.init.uniform_(bn.bias, -0.5, 0.5)
            nn.init.uniform_(bn.running_mean, -0.5, 0.5), nn.init.uniform_(bn.running_var, 0.5, 2)

    def forward(self, x):
        return torch.relu(sum(b(x) for b in self.kxk) + self.scale(x) + self.identity(x))


@pytest.mark.parametrize(("groups", "branches", "convs"), [(1, 1, 7), (8, 3, 7), (1, 4, 7)])
def test_parallel_branches_of_one_kernel_size_merge(groups, branches, convs):
    # MobileOne saved in training form: each of its k 3x3 branches ran as its own QLinearConv plus a
    # QLinearAdd (k = 4: 0.80x of onnxruntime's quantizer, 0.36x merged). The 1x1 branch and the
    # identity BN stay apart (merged into the 3x3 a RepVGG lost 3 dB), so 3 convs per block
    torch.manual_seed(0)
    # (a stem first: a BN on the model input stays float)
    blocks = [RepBlock(8, groups, branches), RepBlock(8, groups, branches)]
    model, x = nn.Sequential(nn.Conv2d(3, 8, 1), *blocks).eval(), torch.randn(2, 3, 9, 10)
    gm, want = _prepared(model, x)
    ops = _targets(gm)
    assert ops.count(torch.ops.aten.conv2d.default) == convs, ops
    assert ops.count(torch.ops.aten.add.Tensor) == 4, ops
    torch.testing.assert_close(gm(x), want, rtol=1e-4, atol=1e-4)


def test_convs_of_different_inputs_or_strides_stay_apart():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(4, 4, 3, 1, 1), nn.Conv2d(4, 4, 1)
            self.c, self.d = nn.Conv2d(4, 4, 3, 2, 1), nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.a(x) + self.b(torch.relu(x))
            return self.c(y) + self.d(y)[:, :, ::2, ::2]

    torch.manual_seed(0)
    gm, want = _prepared(TwoInputs().eval(), torch.randn(2, 4, 8, 8))
    ops = _targets(gm)
    assert ops.count(torch.ops.aten.conv2d.default) == 4, ops


def test_string_padding_becomes_numbers_and_folds_its_batch_norm():
    # the annotators match conv2d's numeric overload only: a ConvMixer's depthwise convs with
    # padding="same" kept float weights, and a BN after such a conv stayed unfolded
    torch.manual_seed(0)
    model, x = SamePadding().eval(), torch.randn(2, 4, 11, 12)
    gm, want = _prepared(model, x)
    ops = _targets(gm)
    assert ops.count(torch.ops.aten.conv2d.default) == 3, ops
    assert ops.count(torch.ops.aten.pad.default) == 1, ops  # the even kernel's extra row
    assert not any("batch_norm" in str(op) for op in ops), ops
    torch.testing.assert_close(gm(x), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (nn.ConvTranspose2d(8, 6, 2, 2), (2, 8, 7, 9)),  # a U-Net's upsampling: a 1x1 conv per phase
        (nn.ConvTranspose2d(8, 6, 4, 2, 1), (2, 8, 7, 9)),  # DCGAN's
        (nn.ConvTranspose2d(8, 6, 3, 2, 1, output_padding=1), (2, 8, 7, 9)),
        (nn.ConvTranspose2d(8, 8, 4, 2, 1, groups=8), (2, 8, 7, 9)),
        (nn.ConvTranspose2d(8, 6, 5, 3, 0, output_padding=2, groups=2, bias=False), (2, 8, 5, 6)),
        (nn.ConvTranspose2d(8, 6, (3, 5), 2, (0, 2)), (2, 8, 5, 6)),
        (nn.ConvTranspose2d(8, 6, 3, 1, 1), (2, 8, 5, 7)),
        # a speech decoder's frequency-only upsampling (DCCRN, CRN) and the other way round
        (nn.ConvTranspose2d(8, 6, (3, 2), (2, 1), (1, 0), output_padding=(1, 0)), (2, 8, 5, 7)),
        (nn.ConvTranspose2d(8, 6, (1, 5), (1, 3), (0, 1)), (2, 8, 5, 7)),
        (nn.ConvTranspose1d(8, 4, 16, 8, 4), (2, 8, 50)),  # a vocoder's
        (nn.ConvTranspose1d(8, 4, 7, 3, 3, output_padding=2, groups=4), (2, 8, 50)),
    ],
)
def test_transposed_convs_become_sub_pixel_convs(layer, shape):
    # ONNX Runtime has no integer ConvTranspose: it ran in float in both quantizers' files
    torch.manual_seed(0)
    model, x = (
        nn.Sequential(
            layer,
            nn.ReLU(),
            nn.Conv1d(layer.out_channels, 3, 1) if len(shape) == 3 else nn.Conv2d(layer.out_channels, 3, 1),
        ).eval(),
        torch.randn(shape),
    )
    gm, want = _prepared(model, x)
    ops = _targets(gm)
    assert not any("conv_transpose" in str(op) for op in ops), ops
    # the ReLU comes straight after the conv, so it folds into that conv's output Q
    first = ops.index(torch.ops.aten.conv1d.default if len(shape) == 3 else torch.ops.aten.conv2d.default)
    assert ops[first + 1] == torch.ops.aten.relu.default, ops
    torch.testing.assert_close(gm(x), want, rtol=1e-5, atol=1e-5)


def test_pixel_shuffle_becomes_two_transposes():
    # ONNX Runtime's DepthToSpace is a 6-D transpose: 349 µs on 16 x 128 x 128 uint8 outputs, 172 µs
    # as two transposes that each move one axis; the ReLU after it moves before it, onto the conv
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 12, 3, 1, 1), nn.PixelShuffle(2), nn.ReLU(), nn.Conv2d(3, 2, 1))
    x = torch.randn(2, 3, 5, 7)
    gm, want = _prepared(model.eval(), x)
    ops = _targets(gm)
    assert torch.ops.aten.pixel_shuffle.default not in ops, ops
    assert ops.count(torch.ops.aten.permute.default) == 2, ops
    assert ops[ops.index(torch.ops.aten.conv2d.default) + 1] == torch.ops.aten.relu.default, ops
    torch.testing.assert_close(gm(x), want, rtol=0, atol=0)


def test_a_relu_after_a_squeeze_moves_onto_its_conv():
    # Caser's horizontal convs: relu(conv(x).squeeze(3)) ran in float, and the max-pool after it
    class Horizontal(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, (3, 16))

        def forward(self, x):
            return F.max_pool1d(F.relu(self.conv(x).squeeze(3)), 4)

    torch.manual_seed(0)
    x = torch.randn(2, 1, 6, 16)
    gm, want = _prepared(Horizontal().eval(), x)
    ops = _targets(gm)
    assert ops[ops.index(torch.ops.aten.conv2d.default) + 1] == torch.ops.aten.relu.default, ops
    torch.testing.assert_close(gm(x), want, rtol=0, atol=0)


def test_a_stack_averaged_over_its_axis_becomes_a_sum():
    # TimesNet's Inception block: stack(convs, -1).mean(-1) was a QLinearConcat of one-byte rows that
    # ONNX Runtime copies with a memcpy each, 1.05-1.12x of onnxruntime's quantizer (0.79x as adds)
    class Inception(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv2d(4, 4, k, padding=k // 2) for k in (1, 3, 5))

        def forward(self, x):
            return torch.stack([c(x) for c in self.convs], -1).mean(-1)

    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, 6)
    gm, want = _prepared(Inception().eval(), x)
    ops = _targets(gm)
    assert torch.ops.aten.cat.default not in ops and torch.ops.aten.stack.default not in ops, ops
    assert ops.count(torch.ops.aten.add.Tensor) == 2, ops
    torch.testing.assert_close(gm(x), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("last", [nn.Identity(), nn.Tanh()])
def test_transposed_conv_that_makes_the_output_stays(last):
    # as a conv its output would be rounded to 8 bits: Conv-TasNet's decoder lost 3.4 dB, DCGAN's last
    # layer (then a tanh) 5.3 dB
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(4, 8, 3), nn.ConvTranspose1d(8, 1, 16, 8), last).eval()
    gm, _ = _prepared(model, torch.randn(2, 4, 30))
    assert torch.ops.aten.conv_transpose1d.default in [n.target for n in gm.graph.nodes]


def test_sub_pixel_weights_have_static_shapes_under_a_dynamic_batch():
    # each new weight had a symbol per dimension: a VAE decoder's reshapes (view, then three transposed
    # convs) nested floor-divisions of them until sympy ran for more than 18 minutes
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(16, 32 * 4 * 4),
        nn.Unflatten(1, (32, 4, 4)),
        nn.ConvTranspose2d(32, 16, 3, 2, 1, output_padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(16, 8, 3, 2, 1, output_padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 3, 3, 1, 1),
    ).eval()
    x = torch.randn(3, 16)
    batch = torch.export.Dim("batch", min=1, max=4096)
    gm = torch.export.export(model, (x,), dynamic_shapes=({0: batch},)).module()
    graph_passes.prepare_graph(gm, own_annotator=True)
    weights = [n.meta["val"] for n in gm.graph.nodes if n.op == "get_attr" and "val" in n.meta]
    assert weights and all(isinstance(d, int) for w in weights for d in w.shape), [w.shape for w in weights]
    assert not any("conv_transpose" in str(n.target) for n in gm.graph.nodes)
    torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-5)


class PoolWithIndices(nn.Module):
    """ENet's downsampling: a max-pool that returns indices nobody reads, then Mish (nn.Mish and
    F.mish, as YOLOv4 ports write it) and a pool whose indices an unpool does read."""

    def __init__(self):
        super().__init__()
        self.conv, self.pool = nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2, 2, return_indices=True)

    def forward(self, x):
        y, _ = self.pool(self.conv(x))
        z, idx = self.pool(nn.functional.mish(y))
        return nn.functional.max_unpool2d(z, idx, 2, 2)


def test_max_pool_without_its_indices_and_mish_decompose():
    torch.manual_seed(0)
    model, x = PoolWithIndices().eval(), torch.randn(2, 3, 8, 8)
    gm, want = _prepared(model, x)
    ops = _targets(gm)
    aten = torch.ops.aten
    assert ops.count(aten.max_pool2d.default) == 1 and ops.count(aten.max_pool2d_with_indices.default) == 1
    assert aten.mish.default not in ops and ops.count(aten.tanh.default) == 1
    torch.testing.assert_close(gm(x), want)


class InPlaceLeakyUpsample(nn.Module):
    """ESRGAN's upsampler and a darknet layer: conv, in-place LeakyReLU, then an upsample or a max-pool."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        y = torch.nn.functional.interpolate(self.act(self.a(x)), scale_factor=2.0, mode="nearest")
        return torch.nn.functional.max_pool2d(self.act(self.b(y)), 2)


def test_in_place_leaky_relu_becomes_functional():
    # the annotator gives leaky_relu its own range; the in-place one got none and ran in float, with
    # the upsample or max-pool after it
    torch.manual_seed(0)
    model, x = InPlaceLeakyUpsample().eval(), torch.randn(2, 3, 8, 8)
    gm, want = _prepared(model, x)
    ops = _targets(gm)
    aten = torch.ops.aten
    assert ops.count(aten.leaky_relu.default) == 2 and aten.leaky_relu_.default not in ops
    torch.testing.assert_close(gm(x), want)
