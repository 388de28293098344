"""More architectures for the side-by-side benchmark: shapes the engine's tests do not build.

Each brings an op the four benchmark models lack: concat (SqueezeNet, Inception, U-Net), SiLU and
squeeze-excite (EfficientNet), hard-swish (MobileNet-V3), chunk and channel shuffle (ShuffleNet),
LeakyReLU (DarkNet), upsampling and transposed convs (U-Net), nn.TransformerEncoder (ViT, BERT), dilated
conv1d (TCN), GRU, token-mixing MLPs, grouped bottlenecks (ResNeXt), pre-activation dense concat
(DenseNet), channels-last LayerNorm blocks (ConvNeXt), dilated conv2d with PReLU and a broadcast
pooled branch (ASPP), LSTM, Conv3d, split-chain-concat blocks with chained max-pools and a sigmoid
detection head (YOLO), GLU (Conformer), a module called twice and a channel max (CBAM), depthwise convs
with a channel multiplier (MobileNet-V1), instance norm then ReLU (style transfer), average pools and
clamps, max over time (text CNN), pre-activation blocks whose shortcut reads a conv before its BN
(ResNet v2), causal zero-padded conv1d (WaveNet), shifted windows (Swin), transposed convs with
kernel 4 (DCGAN's generator) and kernel 2x stride (a HiFi-GAN-style upsampler).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cbr(cin, cout, k=3, s=1, g=1, act=nn.ReLU, d=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, s, d * (k // 2), dilation=d, groups=g, bias=False),
        nn.BatchNorm2d(cout),
        act(),
    )


class Fire(nn.Module):
    def __init__(self, cin, sq, e):
        super().__init__()
        self.s = nn.Sequential(nn.Conv2d(cin, sq, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(sq, e, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(sq, e, 3, padding=1), nn.ReLU())

    def forward(self, x):
        x = self.s(x)
        return torch.cat([self.e1(x), self.e3(x)], 1)


class SqueezeNet(nn.Module):
    def __init__(self, n=1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64),
            Fire(128, 16, 64),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128),
            Fire(256, 32, 128),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192),
            Fire(384, 48, 192),
            Fire(384, 64, 256),
            Fire(512, 64, 256),
        )
        self.cls = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, n, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return torch.flatten(self.cls(self.features(x)), 1)


class VGG(nn.Module):
    def __init__(self):
        super().__init__()
        cfg = [32, "M", 64, "M", 128, 128, "M", 256, 256, "M"]
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(256 * 8 * 8, 512), nn.ReLU(), nn.Dropout(), nn.Linear(512, 10))

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


class SE(nn.Module):
    def __init__(self, c, r=4, gate=nn.Sigmoid, act=nn.ReLU):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.act = act()
        self.fc2 = nn.Conv2d(c // r, c, 1)
        self.gate = gate()

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class MBConv(nn.Module):
    def __init__(self, cin, cout, s, e, act=nn.SiLU, gate=nn.Sigmoid, k=3):
        super().__init__()
        mid = cin * e
        self.use_res = s == 1 and cin == cout
        self.block = nn.Sequential(
            cbr(cin, mid, 1, act=act),
            cbr(mid, mid, k, s, g=mid, act=act),
            SE(mid, 4, gate, act if act is not nn.Hardswish else nn.ReLU),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


class EfficientNetish(nn.Module):
    def __init__(self, act=nn.SiLU, gate=nn.Sigmoid):
        super().__init__()
        self.stem = cbr(3, 32, 3, 2, act=act)
        cfg = [
            (32, 16, 1, 1),
            (16, 24, 2, 6),
            (24, 24, 1, 6),
            (24, 40, 2, 6),
            (40, 40, 1, 6),
            (40, 80, 2, 6),
            (80, 80, 1, 6),
            (80, 112, 1, 6),
            (112, 192, 2, 6),
        ]
        self.blocks = nn.Sequential(*[MBConv(a, b, s, e, act, gate) for a, b, s, e in cfg])
        self.head = cbr(192, 640, 1, act=act)
        self.fc = nn.Linear(640, 1000)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def MobileNetV3ish():
    return EfficientNetish(act=nn.Hardswish, gate=nn.Hardsigmoid)


class UNet(nn.Module):
    def __init__(self, up="transpose"):
        super().__init__()
        self.e1 = nn.Sequential(cbr(3, 16), cbr(16, 16))
        self.e2 = nn.Sequential(cbr(16, 32), cbr(32, 32))
        self.e3 = nn.Sequential(cbr(32, 64), cbr(64, 64))
        self.upm = up
        if up == "transpose":
            self.u2 = nn.ConvTranspose2d(64, 32, 2, 2)
            self.u1 = nn.ConvTranspose2d(32, 16, 2, 2)
        self.d2 = nn.Sequential(cbr(64 if up == "transpose" else 96, 32), cbr(32, 32))
        self.d1 = nn.Sequential(cbr(32 if up == "transpose" else 48, 16), cbr(16, 16))
        self.out = nn.Conv2d(16, 2, 1)

    def _up(self, x, m):
        if self.upm == "transpose":
            return m(x)
        return F.interpolate(x, scale_factor=2, mode=self.upm)

    def forward(self, x):
        a = self.e1(x)
        b = self.e2(F.max_pool2d(a, 2))
        c = self.e3(F.max_pool2d(b, 2))
        d = self.d2(torch.cat([self._up(c, getattr(self, "u2", None)), b], 1))
        e = self.d1(torch.cat([self._up(d, getattr(self, "u1", None)), a], 1))
        return self.out(e)


class ShuffleBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c // 2
        self.b = nn.Sequential(
            cbr(h, h, 1), nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False), nn.BatchNorm2d(h), cbr(h, h, 1)
        )

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        y = torch.cat([a, self.b(b)], 1)
        n, c, hh, ww = y.shape
        return y.view(n, 2, c // 2, hh, ww).transpose(1, 2).reshape(n, c, hh, ww)


class ShuffleNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(cbr(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1), cbr(24, 116, 1))
        self.blocks = nn.Sequential(*[ShuffleBlock(116) for _ in range(4)])
        self.fc = nn.Linear(116, 1000)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean([2, 3]))


class ViT(nn.Module):
    def __init__(self, d=192, depth=4, heads=3, patch=16, img=224, n=1000):
        super().__init__()
        self.patch = nn.Conv2d(3, d, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (img // patch) ** 2 + 1, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.enc = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, n)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.norm(self.enc(x))[:, 0])


class BERTish(nn.Module):
    """Post-norm encoder layers over token embeddings (BERT's order: the sum, then its LayerNorm)."""

    def __init__(self, d=256, depth=4, heads=4):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True)
        self.enc = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.pool = nn.Linear(d, d)

    def forward(self, x):
        return torch.tanh(self.pool(self.enc(self.ln(x))[:, 0]))


class DarkNetish(nn.Module):
    def __init__(self):
        super().__init__()

        def c(a, b, k=3, s=1):
            return nn.Sequential(
                nn.Conv2d(a, b, k, s, k // 2, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.1)
            )

        self.f = nn.Sequential(
            c(3, 32),
            c(32, 64, 3, 2),
            c(64, 32, 1),
            c(32, 64),
            c(64, 128, 3, 2),
            c(128, 64, 1),
            c(64, 128),
            c(128, 256, 3, 2),
        )
        self.out = nn.Conv2d(256, 255, 1)

    def forward(self, x):
        return self.out(self.f(x))


class Inceptionish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(cbr(3, 32, 3, 2), cbr(32, 64, 3, 2))
        self.b1 = cbr(64, 32, 1)
        self.b2 = nn.Sequential(cbr(64, 24, 1), cbr(24, 32, 3))
        self.b3 = nn.Sequential(cbr(64, 16, 1), cbr(16, 24, 3), cbr(24, 24, 3))
        self.b4 = nn.Sequential(nn.AvgPool2d(3, 1, 1), cbr(64, 16, 1))
        self.fc = nn.Linear(104, 100)

    def forward(self, x):
        x = self.stem(x)
        y = torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class TCN(nn.Module):
    def __init__(self):
        super().__init__()
        c = 64
        self.inp = nn.Conv1d(13, c, 1)
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv1d(c, c, 3, padding=d, dilation=d),
                    nn.BatchNorm1d(c),
                    nn.ReLU(),
                    nn.Conv1d(c, c, 1),
                )
                for d in (1, 2, 4, 8)
            ]
        )
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.inp(x)
        for b in self.blocks:
            x = F.relu(x + b(x))
        return self.fc(x.mean(-1))


class GRUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(40, 128, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        y, _ = self.gru(x)
        return self.fc(y[:, -1])


class MLPMixer(nn.Module):
    def __init__(self, d=128, tokens=64, depth=4):
        super().__init__()
        self.emb = nn.Conv2d(3, d, 8, 8)
        self.layers = nn.ModuleList()
        for _ in range(depth):
            self.layers.append(
                nn.ModuleList(
                    [
                        nn.LayerNorm(d),
                        nn.Sequential(nn.Linear(tokens, 256), nn.GELU(), nn.Linear(256, tokens)),
                        nn.LayerNorm(d),
                        nn.Sequential(nn.Linear(d, 512), nn.GELU(), nn.Linear(512, d)),
                    ]
                )
            )
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        x = self.emb(x).flatten(2).transpose(1, 2)
        for n1, tok, n2, ch in self.layers:
            x = x + tok(n1(x).transpose(1, 2)).transpose(1, 2)
            x = x + ch(n2(x))
        return self.head(x.mean(1))


class Bottleneck(nn.Module):
    def __init__(self, cin, mid, cout, stride=1, g=1):
        super().__init__()
        self.f = nn.Sequential(
            cbr(cin, mid, 1),
            cbr(mid, mid, 3, stride, g),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.down = (
            nn.Identity()
            if cin == cout and stride == 1
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x):
        return F.relu(self.f(x) + self.down(x))


class ResNeXtish(nn.Module):
    def __init__(self, g=32):
        super().__init__()
        self.f = nn.Sequential(
            cbr(3, 64, 7, 2),
            nn.MaxPool2d(3, 2, 1),
            Bottleneck(64, 128, 256, 1, g),
            Bottleneck(256, 128, 256, 1, g),
            Bottleneck(256, 256, 512, 2, g),
            Bottleneck(512, 256, 512, 1, g),
        )
        self.fc = nn.Linear(512, 1000)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.f(x), 1).flatten(1))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.f = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.ReLU(),
            nn.Conv2d(cin, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth),
            nn.ReLU(),
            nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x):
        return torch.cat([x, self.f(x)], 1)


class DenseNetish(nn.Module):
    def __init__(self, growth=32):
        super().__init__()
        layers, c = [cbr(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64
        for block in range(2):
            for _ in range(4):
                layers.append(DenseLayer(c, growth))
                c += growth
            if block == 0:
                layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
                c //= 2
        self.f = nn.Sequential(*layers, nn.BatchNorm2d(c), nn.ReLU())
        self.fc = nn.Linear(c, 1000)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.f(x), 1).flatten(1))


class ConvNeXtBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.dw = nn.Conv2d(d, d, 7, padding=3, groups=d)
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.gamma = nn.Parameter(torch.full((d,), 0.5))

    def forward(self, x):
        y = self.mlp(self.norm(self.dw(x).permute(0, 2, 3, 1))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtish(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(3, 64, 4, 4),
            ConvNeXtBlock(64),
            ConvNeXtBlock(64),
            nn.Conv2d(64, 128, 2, 2),
            ConvNeXtBlock(128),
            ConvNeXtBlock(128),
        )
        self.fc = nn.Linear(128, 1000)

    def forward(self, x):
        return self.fc(self.f(x).mean((2, 3)))


class ASPPish(nn.Module):
    """DeepLab's atrous pyramid: dilated branches and a pooled branch broadcast back, sigmoid masks."""

    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(cbr(3, 32, 3, 2, act=nn.PReLU), cbr(32, 64, 3, 2), cbr(64, 64))
        self.branches = nn.ModuleList([cbr(64, 32, 1)] + [cbr(64, 32, 3, d=d) for d in (2, 4, 6)])
        self.pooled = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(64, 32, 1), nn.ReLU())
        self.proj = cbr(160, 64, 1)
        self.head = nn.Conv2d(64, 5, 1)

    def forward(self, x):
        x = self.f(x)
        g = self.pooled(x).expand(-1, -1, x.shape[2], x.shape[3])
        y = self.proj(torch.cat([b(x) for b in self.branches] + [g], 1))
        return torch.sigmoid(self.head(y))


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(40, 128, num_layers=2, batch_first=True)
        self.fc = nn.Linear(128, 12)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, -1])


class Conv3dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv3d(3, 32, 3, (1, 2, 2), 1),
            nn.BatchNorm3d(32),
            nn.ReLU(),
            nn.Conv3d(32, 64, 3, 2, 1),
            nn.BatchNorm3d(64),
            nn.ReLU(),
        )
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.f(x).mean((2, 3, 4)))


class C2f(nn.Module):
    """YOLOv8's block: split, a chain of convs on the last piece, concatenate every piece."""

    def __init__(self, c, n=2):
        super().__init__()
        self.cv1 = cbr(c, c, 1, act=nn.SiLU)
        self.m = nn.ModuleList(cbr(c // 2, c // 2, 3, act=nn.SiLU) for _ in range(n))
        self.cv2 = cbr(c // 2 * (2 + n), c, 1, act=nn.SiLU)

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cv1 = cbr(c, c // 2, 1, act=nn.SiLU)
        self.cv2 = cbr(c * 2, c, 1, act=nn.SiLU)

    def forward(self, x):
        x = self.cv1(x)
        y1 = F.max_pool2d(x, 5, 1, 2)
        y2 = F.max_pool2d(y1, 5, 1, 2)
        return self.cv2(torch.cat([x, y1, y2, F.max_pool2d(y2, 5, 1, 2)], 1))


class YOLOish(nn.Module):
    """A YOLOv8-style detector: C2f backbone, SPPF, upsample + concat neck, a sigmoid box/class head."""

    def __init__(self, classes=20):
        super().__init__()
        self.p3 = nn.Sequential(
            cbr(3, 16, 3, 2, act=nn.SiLU),
            cbr(16, 32, 3, 2, act=nn.SiLU),
            C2f(32),
            cbr(32, 64, 3, 2, act=nn.SiLU),
            C2f(64),
        )
        self.p4 = nn.Sequential(cbr(64, 128, 3, 2, act=nn.SiLU), C2f(128), SPPF(128))
        self.neck = nn.Sequential(cbr(192, 64, 1, act=nn.SiLU), C2f(64))
        self.head = nn.Conv2d(64, 4 + classes, 1)

    def forward(self, x):
        p3 = self.p3(x)
        up = F.interpolate(self.p4(p3), scale_factor=2.0, mode="nearest")
        out = self.head(self.neck(torch.cat([up, p3], 1))).flatten(2).permute(0, 2, 1)
        return torch.cat([out[..., :4].sigmoid() * 2 - 0.5, out[..., 4:].sigmoid()], -1)


class ConformerConv(nn.Module):
    """Conformer's convolution module on [B, T, D]: LayerNorm, pointwise conv, GLU, depthwise conv1d,
    BatchNorm, SiLU, pointwise conv, residual, then a linear."""

    def __init__(self, d=144):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.pw1 = nn.Conv1d(d, 2 * d, 1)
        self.dw = nn.Conv1d(d, d, 15, padding=7, groups=d)
        self.bn = nn.BatchNorm1d(d)
        self.pw2 = nn.Conv1d(d, d, 1)
        self.ff = nn.Linear(d, d)

    def forward(self, x):
        y = F.glu(self.pw1(self.norm(x).transpose(1, 2)), dim=1)
        y = self.pw2(F.silu(self.bn(self.dw(y)))).transpose(1, 2)
        return self.ff(x + y)


class CBAMNet(nn.Module):
    """CBAM blocks: channel attention from one MLP called on an average- and a max-pooled vector,
    spatial attention from a 7x7 conv over the channel mean and max; pooled features out."""

    def __init__(self, c=64):
        super().__init__()
        self.stem = nn.Sequential(cbr(3, c // 2, 3, 2), cbr(c // 2, c, 3, 2))
        self.mlp = nn.Sequential(nn.Conv2d(c, c // 8, 1), nn.ReLU(), nn.Conv2d(c // 8, c, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)
        self.body = cbr(c, 2 * c, 3, 2)

    def forward(self, x):
        x = self.stem(x)
        gate = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        x = x * torch.sigmoid(gate)
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        x = x * torch.sigmoid(self.spatial(pooled))
        return self.body(x).mean((2, 3))


class MobileNetV1DM(nn.Module):
    """MobileNet-V1 with a depth multiplier of 2 on its depthwise convs (Keras' depth_multiplier)."""

    def __init__(self):
        super().__init__()
        layers = [cbr(3, 32, 3, 2, act=nn.ReLU6)]
        for cin, cout, s in ((32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 512, 2)):
            layers += [cbr(cin, 2 * cin, 3, s, g=cin, act=nn.ReLU6), cbr(2 * cin, cout, 1, act=nn.ReLU6)]
        self.f = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 100))

    def forward(self, x):
        return self.f(x)


class StyleNet(nn.Module):
    """Fast style transfer: reflect-padded convs, instance norm then ReLU, residual blocks, nearest
    upsampling, tanh output."""

    def __init__(self):
        super().__init__()

        def block(cin, cout, s):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, s, 1, padding_mode="reflect"),
                nn.InstanceNorm2d(cout, affine=True),
                nn.ReLU(),
            )

        self.enc = nn.Sequential(block(3, 16, 1), block(16, 32, 2), block(32, 64, 2))
        self.res = nn.ModuleList(
            nn.Sequential(block(64, 64, 1), nn.Conv2d(64, 64, 3, 1, 1)) for _ in range(2)
        )
        self.dec = nn.Sequential(
            nn.Upsample(scale_factor=2),
            block(64, 32, 1),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(32, 3, 3, 1, 1),
        )

    def forward(self, x):
        x = self.enc(x)
        for r in self.res:
            x = x + r(x)
        return torch.tanh(self.dec(x))


class PoolZoo(nn.Module):
    """Pools other models leave out: 3x3 average pools, a ceil-mode max pool, an adaptive 2x2 average;
    ReLU6 and a (-1, 1) hard-tanh clamp."""

    def __init__(self):
        super().__init__()
        self.c1 = cbr(3, 32, 3, 2, act=nn.ReLU6)
        self.c2 = cbr(32, 64, act=lambda: nn.Hardtanh(-1.0, 1.0))
        self.c3 = cbr(64, 128)
        self.fc = nn.Linear(128 * 4, 10)

    def forward(self, x):
        x = F.avg_pool2d(self.c1(x), 3, 2, 1)
        x = F.max_pool2d(self.c2(x), 3, 2, ceil_mode=True)
        x = F.avg_pool2d(self.c3(x), 3, 1, 1)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 2), 1))


class TextCNN(nn.Module):
    """Kim's text CNN on embedded tokens [B, D, T]: convs of three widths, max over time, concat."""

    def __init__(self, d=128):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(d, 128, k, padding=k // 2) for k in (3, 5, 7))
        self.fc = nn.Linear(384, 5)

    def forward(self, x):
        return self.fc(torch.cat([F.relu(c(x)).amax(-1) for c in self.convs], 1))


class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.short = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = F.relu(self.bn1(x))
        short = self.short(y) if self.short is not None else x
        return self.conv2(F.relu(self.bn2(self.conv1(y)))) + short


class PreActResNet(nn.Module):
    """ResNet v2: BN and ReLU before each conv; the first shortcut reads the stem before its BN."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 1, 1, bias=False)
        self.blocks = nn.Sequential(PreActBlock(32, 32, 1), PreActBlock(32, 64, 2), PreActBlock(64, 128, 2))
        self.bn, self.fc = nn.BatchNorm2d(128), nn.Linear(128, 10)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.blocks(self.stem(x)))).mean((2, 3)))


class WaveNet(nn.Module):
    """Gated causal conv1d stack: left-only zero pads, dilations 1..32, tanh x sigmoid, skip sums."""

    def __init__(self, c=32, layers=6):
        super().__init__()
        self.inp = nn.Conv1d(1, c, 1)
        self.filters = nn.ModuleList(nn.Conv1d(c, c, 2, dilation=2**i) for i in range(layers))
        self.gates = nn.ModuleList(nn.Conv1d(c, c, 2, dilation=2**i) for i in range(layers))
        self.res = nn.ModuleList(nn.Conv1d(c, c, 1) for _ in range(layers))
        self.skip = nn.ModuleList(nn.Conv1d(c, c, 1) for _ in range(layers))
        self.out = nn.Sequential(nn.ReLU(), nn.Conv1d(c, c, 1), nn.ReLU(), nn.Conv1d(c, 16, 1))

    def forward(self, x):
        x, skip = self.inp(x), 0
        for f, g, r, s in zip(self.filters, self.gates, self.res, self.skip):
            padded = F.pad(x, (f.dilation[0], 0))
            z = torch.tanh(f(padded)) * torch.sigmoid(g(padded))
            skip, x = skip + s(z), x + r(z)
        return self.out(skip)


class SwinBlock(nn.Module):
    """A Swin block on [B, H, W, C]: shifted 4x4 windows (torch.roll), attention with a learned bias."""

    def __init__(self, d=64, window=4, heads=4):
        super().__init__()
        self.window, self.heads = window, heads
        self.norm1, self.qkv, self.proj = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.bias = nn.Parameter(torch.randn(heads, window**2, window**2) * 0.1)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x):
        b, h, w, c = x.shape
        k, shift = self.window, self.window // 2
        y = torch.roll(self.norm1(x), (-shift, -shift), (1, 2))
        y = y.reshape(b, h // k, k, w // k, k, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, k * k, c)
        q, key, v = self.qkv(y).reshape(-1, k * k, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ key.transpose(-2, -1)) * (c // self.heads) ** -0.5 + self.bias
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(-1, k * k, c)
        y = self.proj(y).reshape(b, h // k, w // k, k, k, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        x = x + torch.roll(y, (shift, shift), (1, 2))
        return x + self.mlp(self.norm2(x))


class Swinish(nn.Module):
    def __init__(self, d=64):
        super().__init__()
        self.embed, self.block, self.head = nn.Conv2d(3, d, 4, 4), SwinBlock(d), nn.Linear(d, 10)

    def forward(self, x):
        return self.head(self.block(self.embed(x).permute(0, 2, 3, 1)).mean((1, 2)))


class DCGANGenerator(nn.Module):
    """DCGAN's generator: a latent vector through transposed convs (kernel 4, stride 2), BN, ReLU, tanh."""

    def __init__(self, nz=100, g=64):
        super().__init__()

        def up(i, o, stride=2, pad=1):
            return [nn.ConvTranspose2d(i, o, 4, stride, pad, bias=False), nn.BatchNorm2d(o), nn.ReLU(True)]

        self.net = nn.Sequential(
            *up(nz, g * 8, 1, 0), *up(g * 8, g * 4), *up(g * 4, g * 2), *up(g * 2, g),
            nn.ConvTranspose2d(g, 3, 4, 2, 1, bias=False), nn.Tanh(),
        )  # fmt: skip

    def forward(self, z):
        return self.net(z)


class HiFiGANUpsampler(nn.Module):
    """HiFi-GAN's generator without its residual stacks: mel frames upsampled 8x, 8x, 2x by transposed
    conv1d (kernel twice the stride), LeakyReLU between, a conv after each."""

    def __init__(self, mels=80, c=256):
        super().__init__()
        self.pre = nn.Conv1d(mels, c, 7, padding=3)
        layers = []
        for rate in (8, 8, 2):
            layers += [
                nn.LeakyReLU(0.1), nn.ConvTranspose1d(c, c // 2, 2 * rate, rate, rate // 2),
                nn.LeakyReLU(0.1), nn.Conv1d(c // 2, c // 2, 3, padding=1),
            ]  # fmt: skip
            c //= 2
        self.ups = nn.Sequential(*layers)
        self.post = nn.Conv1d(c, 1, 7, padding=3)

    def forward(self, mel):
        return torch.tanh(self.post(F.leaky_relu(self.ups(self.pre(mel)), 0.1)))


# name -> (constructor, input shape without batch, timing batch, calibration samples)
CASES = {
    "squeezenet": (SqueezeNet, (3, 224, 224), 1, 32),
    "vgg-small": (VGG, (3, 128, 128), 1, 32),
    "efficientnet-ish": (EfficientNetish, (3, 224, 224), 1, 32),
    "mobilenetv3-ish": (MobileNetV3ish, (3, 224, 224), 1, 32),
    "unet-transpose": (UNet, (3, 128, 128), 1, 16),
    "unet-nearest": (lambda: UNet("nearest"), (3, 128, 128), 1, 16),
    "unet-bilinear": (lambda: UNet("bilinear"), (3, 128, 128), 1, 16),
    "shufflenet-ish": (ShuffleNetish, (3, 224, 224), 1, 32),
    "vit-tiny": (ViT, (3, 224, 224), 1, 16),
    "bert-ish": (BERTish, (128, 256), 1, 16),
    "darknet-ish": (DarkNetish, (3, 256, 256), 1, 16),
    "inception-ish": (Inceptionish, (3, 224, 224), 1, 32),
    "tcn": (TCN, (13, 400), 16, 64),
    "gru": (GRUNet, (50, 40), 16, 64),
    "mlp-mixer": (MLPMixer, (3, 64, 64), 8, 32),
    "resnext-ish": (ResNeXtish, (3, 224, 224), 1, 16),
    "densenet-ish": (DenseNetish, (3, 224, 224), 1, 16),
    "convnext-ish": (ConvNeXtish, (3, 224, 224), 1, 16),
    "aspp-ish": (ASPPish, (3, 256, 256), 1, 16),
    "lstm": (LSTMNet, (50, 40), 16, 64),
    "conv3d": (Conv3dNet, (3, 8, 64, 64), 4, 32),
    "yolo-ish": (YOLOish, (3, 320, 320), 1, 16),
    "conformer-conv": (ConformerConv, (100, 144), 8, 32),
    "cbam-ish": (CBAMNet, (3, 224, 224), 1, 16),
    "mobilenetv1-dm2": (MobileNetV1DM, (3, 224, 224), 1, 16),
    "style-transfer": (StyleNet, (3, 256, 256), 1, 8),
    "pool-zoo": (PoolZoo, (3, 224, 224), 1, 16),
    "text-cnn": (TextCNN, (128, 200), 16, 64),
    "preact-resnet": (PreActResNet, (3, 64, 64), 1, 16),
    "wavenet": (WaveNet, (1, 2000), 1, 16),
    "swin-ish": (Swinish, (3, 64, 64), 1, 16),
    "dcgan-generator": (DCGANGenerator, (100, 1, 1), 1, 16),
    "hifigan-upsampler": (HiFiGANUpsampler, (80, 64), 1, 16),
}
