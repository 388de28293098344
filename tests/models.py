"""Small real models of the shapes the engine must handle (no torchvision: it does not import here)."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


class ConvBnRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.head = nn.Conv2d(16, 8, 1)

    def forward(self, x):
        return self.head(self.relu(self.bn(self.conv(x))))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class ResNet18(nn.Module):
    """ResNet-18 topology (20 convs, 8 residual adds, one fc); `width` scales the channels."""

    def __init__(self, num_classes=1000, width=64):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        chans = [w, 2 * w, 4 * w, 8 * w]
        layers, cin = [], w
        for i, c in enumerate(chans):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, c, stride), BasicBlock(c, c)))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * w, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        return x + self.block(x) if self.use_res else self.block(x)


class MobileNetV2(nn.Module):
    """MobileNet-V2 topology (depthwise convs, ReLU6, linear bottlenecks); `width` scales it down."""

    CFG = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]

    def __init__(self, num_classes=1000, width=1.0):
        super().__init__()

        def c(v):
            return max(8, int(v * width + 4) // 8 * 8)

        layers = [nn.Conv2d(3, c(32), 3, 2, 1, bias=False), nn.BatchNorm2d(c(32)), nn.ReLU6(inplace=True)]
        cin = c(32)
        for t, ch, n, s in self.CFG:
            for i in range(n):
                layers.append(InvertedResidual(cin, c(ch), s if i == 0 else 1, t))
                cin = c(ch)
        layers += [nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class Conv1dAudio(nn.Module):
    """A conv1d pitch/keyword-style model; one BatchNorm follows a ReLU (cannot be folded)."""

    def __init__(self, n_mels=40, classes=12):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, 64, 5, padding=2)
        self.bn1 = nn.BatchNorm1d(64)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv1d(64, 64, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.bn_after_relu = nn.BatchNorm1d(64)
        self.conv3 = nn.Conv1d(64, 128, 3, padding=1, stride=2)
        self.bn3 = nn.BatchNorm1d(128)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.bn_after_relu(self.relu2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class BnAfterRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm2d(8)
        self.out = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.out(self.bn(self.relu(self.conv(x))))


class DepthwiseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.pw1 = nn.Conv2d(3, 16, 1)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.bn = nn.BatchNorm2d(16)
        self.relu = nn.ReLU6()
        self.pw2 = nn.Conv2d(16, 8, 1)

    def forward(self, x):
        return self.pw2(self.relu(self.bn(self.dw(self.pw1(x)))))


class MLP(nn.Module):
    def __init__(self, d_in=32, hidden=64, classes=10):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


class ResidualAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.b(self.relu(self.a(x))) + x)


class EncoderBlock(nn.Module):
    """A transformer encoder block written with explicit MatMul/softmax (what export captures)."""

    def __init__(self, d=64, heads=4, ff=128):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.ff1 = nn.Linear(d, ff)
        self.act = nn.GELU()
        self.ff2 = nn.Linear(ff, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)
        att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.dh**-0.5, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.ff2(self.act(self.ff1(self.ln2(x))))


class SqueezeExcite(nn.Module):
    """EfficientNet-style: SiLU activations and a squeeze-excite gate (pool, 1x1 convs, sigmoid, mul)."""

    def __init__(self, act=nn.SiLU, gate=nn.Sigmoid):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.act = act()
        self.fc1 = nn.Conv2d(16, 4, 1)
        self.fc2 = nn.Conv2d(4, 16, 1)
        self.gate = gate()
        self.head = nn.Conv2d(16, 8, 1)

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        s = self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.head(x * s)


class FireConcat(nn.Module):
    """SqueezeNet's fire module: two expand convs concatenated, then a pool and a head."""

    def __init__(self):
        super().__init__()
        self.squeeze = nn.Conv2d(3, 8, 1)
        self.e1 = nn.Conv2d(8, 16, 1)
        self.e3 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Conv2d(32, 8, 1)

    def forward(self, x):
        x = torch.relu(self.squeeze(x))
        y = torch.cat([torch.relu(self.e1(x)), torch.relu(self.e3(x))], 1)
        return self.head(self.pool(y))


class ChannelShuffle(nn.Module):
    """ShuffleNet-V2 unit: chunk, a conv branch, concat, channel shuffle (view/transpose/reshape)."""

    def __init__(self, c=16):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.branch = nn.Sequential(nn.Conv2d(c // 2, c // 2, 1), nn.BatchNorm2d(c // 2), nn.ReLU())
        self.head = nn.Conv2d(c, 8, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        a, b = x.chunk(2, dim=1)
        y = torch.cat([a, self.branch(b)], 1)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.head(y)


class UpsampleConcat(nn.Module):
    """A U-Net step: pool, conv, upsample (interpolation or transposed conv), skip concat, conv."""

    def __init__(self, mode="nearest"):
        super().__init__()
        self.mode = mode
        self.enc = nn.Conv2d(3, 8, 3, padding=1)
        self.mid = nn.Conv2d(8, 8, 3, padding=1)
        self.dec = nn.Conv2d(16, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 8, 2, 2) if mode == "transpose" else None

    def forward(self, x):
        a = torch.relu(self.enc(x))
        b = torch.relu(self.mid(nn.functional.max_pool2d(a, 2)))
        if self.up is not None:
            up = self.up(b)  # signed, beside the ReLU skip `a`
        else:
            up = nn.functional.interpolate(b, scale_factor=2, mode=self.mode)
        return self.dec(torch.cat([up, a], 1))


class DenseLayer(nn.Module):
    """DenseNet: a pooled ReLU stem concatenated with a pre-activation layer's signed conv output."""

    def __init__(self, c=8, growth=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.layer = nn.Sequential(
            nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, growth, 3, padding=1, bias=False)
        )
        self.head = nn.Sequential(nn.BatchNorm2d(c + growth), nn.ReLU(), nn.Conv2d(c + growth, 4, 1))

    def forward(self, x):
        x = self.stem(x)
        return self.head(torch.cat([x, self.layer(x)], 1))


class PReluNet(nn.Module):
    """PReLU with one slope (runs as LeakyReLU in int8) and with a slope per channel (stays float)."""

    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.PReLU(init=0.2),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.PReLU(8),
            nn.Conv2d(8, 4, 1),
        )
        with torch.no_grad():
            self.f[3].weight.uniform_(0.05, 0.4)

    def forward(self, x):
        return self.f(x)


class SpatialMean(nn.Module):
    """A head pooled with x.mean((2, 3)), as timm-style models write it (no keepdim)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


class TorchEncoderLayer(nn.Module):
    """nn.TransformerEncoderLayer as users write it: exported with scaled_dot_product_attention."""

    def __init__(self, d=32, heads=2):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(
            d, heads, 2 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )

    def forward(self, x):
        return self.layer(x)


class NormRelu(nn.Module):
    """Style-transfer shape: instance norm then ReLU and a reflect-padded conv; instance norm then SiLU."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.InstanceNorm2d(8, affine=True)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect")
        self.norm2 = nn.InstanceNorm2d(8, affine=True)
        self.c3 = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.c2(torch.relu(self.norm(self.c1(x))))
        return self.c3(F.silu(self.norm2(x)))


class MaxOverTime(nn.Module):
    """A text-CNN head: conv1d filters of two widths, max over time, concat, linear."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(16, 16, k, padding=k // 2) for k in (3, 5))
        self.fc = nn.Linear(32, 4)

    def forward(self, x):
        return self.fc(torch.cat([torch.relu(c(x)).amax(-1) for c in self.convs], 1))


def ChannelMultiplier() -> nn.Module:
    """A depthwise conv with two outputs per input channel (Keras' depth_multiplier=2)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, groups=16),
        nn.ReLU(),
        nn.Conv2d(32, 8, 1),
    )


class AvgPools(nn.Module):
    """A 3x3 average pool, an adaptive 2x2 one, a (-1, 1) clamp and an add with alpha."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(32, 4)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        y = torch.add(x, torch.clamp(self.c2(F.avg_pool2d(x, 3, 1, 1)), -1.0, 1.0), alpha=2.0)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 2), 1))


class Siamese(nn.Module):
    """Two inputs through one shared conv-BN tower (its weights shared by two convs), then compared."""

    def __init__(self):
        super().__init__()
        self.tower = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(32, 2)

    def forward(self, a, b):
        fa, fb = self.tower(a), self.tower(b)
        return self.fc(torch.cat([(fa - fb).abs(), fa * fb], 1))


class PreAct(nn.Module):
    """A pre-activation (ResNet v2) block: BN and ReLU before each conv; the shortcut reads the stem's
    output before the BN that follows it."""

    def __init__(self, c=16):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, 1, 1, bias=False)
        self.bn1, self.conv1 = nn.BatchNorm2d(c), nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(c), nn.Conv2d(c, c, 3, 1, 1, bias=False)

    def forward(self, x):
        x = self.stem(x)
        y = self.conv1(F.relu(self.bn1(x)))
        return self.conv2(F.relu(self.bn2(y))) + x


class CausalConv(nn.Module):
    """WaveNet/TCN-style causal conv1d: each conv reads its input zero-padded on the left only."""

    def __init__(self, c=16):
        super().__init__()
        self.inp = nn.Conv1d(8, c, 1)
        self.convs = nn.ModuleList(nn.Conv1d(c, c, 2, dilation=d) for d in (1, 2))

    def forward(self, x):
        x = F.relu(self.inp(x))
        for conv in self.convs:
            x = x + F.relu(conv(F.pad(x, (conv.dilation[0], 0))))
        return x


class ShiftedWindows(nn.Module):
    """Swin's cyclic shift: torch.roll over both spatial axes between two convs."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return self.b(torch.roll(F.relu(self.a(x)), (-2, 2), (2, 3)))


class ReluAfterConcat(nn.Module):
    """ShuffleNet v1's unit end: a pooled shortcut and a conv branch concatenated, then one ReLU."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = self.stem(x)
        return self.fc(F.relu(torch.cat([F.avg_pool2d(x, 3, 1, 1), self.branch(x)], 1)).mean((2, 3)))


class WeightedFusion(nn.Module):
    """EfficientDet's fast normalised fusion: two branches weighted by relu(w) / (sum + eps). The
    branches read different inputs, as BiFPN's levels do (convs of one input would merge)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 3, padding=1)
        self.w = nn.Parameter(torch.tensor([0.7, 1.3]))
        self.out = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        w = F.relu(self.w)
        return self.out((w[0] * self.a(x) + w[1] * self.b(F.max_pool2d(x, 3, 1, 1))) / (w.sum() + 1e-4))


class InputNorm(nn.Module):
    """A BatchNorm (without affine) on the model input itself, then a conv."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm2d(3, affine=False)
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))

    def forward(self, x):
        return self.conv(self.norm(x))


class ChannelScale(nn.Module):
    """Per-channel scale and shift parameters after convs (Caffe's Scale layer) and a LayerScale
    after a linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.g1, self.b1 = (
            nn.Parameter(torch.rand(1, 8, 1, 1) + 0.5),
            nn.Parameter(torch.randn(1, 8, 1, 1) * 0.1),
        )
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.g2 = nn.Parameter(torch.rand(1, 8, 1, 1) * 0.1)
        self.fc, self.gamma, self.head = nn.Linear(8, 8), nn.Parameter(torch.full((8,), 0.1)), nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.conv1(x) * self.g1 + self.b1)
        x = x + self.conv2(x) * self.g2
        v = x.mean((2, 3))
        return self.head(v + self.gamma * self.fc(v))


class TfActivations(nn.Module):
    """Activations as ported TensorFlow models write them: maximum(x, 0.2 x) and clamp(min=0)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = (nn.Conv2d(i, 8, 3, padding=1) for i in (3, 8, 8))

    def forward(self, x):
        x = self.a(x)
        return self.c(self.b(torch.maximum(x, 0.2 * x)).clamp(min=0))


class KerasSame(nn.Module):
    """How ported Keras models pad: F.pad on the input before a stride-2 conv, padding="same" with an
    even kernel (torch pads the extra row on the far side), F.relu6."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, stride=2)
        self.b = nn.Conv2d(8, 8, 4, padding="same", bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.c = nn.Conv2d(8, 4, 3, padding="same")

    def forward(self, x):
        x = F.relu6(self.a(F.pad(x, (0, 1, 0, 1))))
        return self.c(F.relu6(self.bn(self.b(x))))


class Generator(nn.Module):
    """A DCGAN-style upsampler: transposed convs (kernel 4, stride 2) with BN and ReLU, a conv head."""

    def __init__(self):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(8, 16, 4, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.up2 = nn.ConvTranspose2d(16, 8, 4, 2, 1)
        self.head = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        return self.head(F.relu(self.up2(F.relu(self.bn(self.up1(x))))))


class Upsampler1d(nn.Module):
    """A vocoder's upsampling: a transposed conv1d (kernel 16, stride 8), LeakyReLU, a conv."""

    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose1d(16, 8, 16, 8, 4)
        self.conv = nn.Conv1d(8, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(F.leaky_relu(self.up(x), 0.1))


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BatchNorms non-trivial statistics so folding them is really exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            if m.affine:
                m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


# name -> (constructor, example input shape without batch)
ZOO = {
    "conv_bn_relu": (ConvBnRelu, (3, 32, 32)),
    "residual_add": (ResidualAdd, (8, 16, 16)),
    "linear": (MLP, (32,)),
    "depthwise": (DepthwiseNet, (3, 32, 32)),
    "conv1d": (Conv1dAudio, (40, 101)),
    "bn_after_relu": (BnAfterRelu, (3, 16, 16)),
    "encoder": (EncoderBlock, (16, 64)),
    "resnet18": (lambda: ResNet18(num_classes=100, width=32), (3, 64, 64)),
    "se_silu": (SqueezeExcite, (3, 16, 16)),
    "se_silu_inplace": (lambda: SqueezeExcite(partial(nn.SiLU, inplace=True)), (3, 16, 16)),  # YOLOv5's
    "hardswish": (lambda: SqueezeExcite(nn.Hardswish, nn.Hardsigmoid), (3, 16, 16)),
    # torchvision's MobileNetV3 builds its activations with inplace=True: hardswish_ in the graph
    "hardswish_inplace": (
        lambda: SqueezeExcite(partial(nn.Hardswish, inplace=True), partial(nn.Hardsigmoid, inplace=True)),
        (3, 16, 16),
    ),
    "concat": (FireConcat, (3, 16, 16)),
    "shuffle": (ChannelShuffle, (3, 16, 16)),
    "upsample_concat": (UpsampleConcat, (3, 16, 16)),
    "transpose_concat": (lambda: UpsampleConcat("transpose"), (3, 16, 16)),
    "torch_encoder": (TorchEncoderLayer, (16, 32)),
    "dense_concat": (DenseLayer, (3, 16, 16)),
    "prelu": (PReluNet, (3, 16, 16)),
    "spatial_mean": (SpatialMean, (3, 16, 16)),
    "norm_relu": (NormRelu, (3, 16, 16)),
    "max_over_time": (MaxOverTime, (16, 24)),
    "channel_multiplier": (ChannelMultiplier, (3, 16, 16)),
    "avg_pools": (AvgPools, (3, 16, 16)),
    "preact": (PreAct, (3, 16, 16)),
    "causal_conv": (CausalConv, (8, 32)),
    "shifted_windows": (ShiftedWindows, (3, 16, 16)),
    "relu_after_concat": (ReluAfterConcat, (3, 16, 16)),
    "weighted_fusion": (WeightedFusion, (3, 16, 16)),
    "input_norm": (InputNorm, (3, 16, 16)),
    "channel_scale": (ChannelScale, (3, 16, 16)),
    "tf_activations": (TfActivations, (3, 16, 16)),
    "keras_same": (KerasSame, (3, 16, 16)),
    "generator": (Generator, (8, 4, 4)),
    "upsampler_1d": (Upsampler1d, (16, 20)),
}


def build(name: str, seed: int = 0) -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(seed)
    ctor, shape = ZOO[name]
    return randomize_bn(ctor(), seed), shape


def save_pt2(model: nn.Module, shape: tuple[int, ...], path, batch: int = 2) -> None:
    """Export with a symbolic batch dimension, as users are told to."""
    ex = (torch.randn(batch, *shape),)
    dyn = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    torch.export.save(torch.export.export(model.eval(), ex, dynamic_shapes=dyn), str(path))
