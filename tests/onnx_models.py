"""Independent torch re-implementations of MobileNets, for the ONNX import tests.

Written from torchvision's and timm's definitions (not with hwnas's builder): torchvision's
MobileNetV2 and MobileNetV3 (features / classifier, Conv2dNormActivation, SqueezeExcitation
with a hard-sigmoid gate) and a timm-like MobileNetV3 with timm's efficientnet-builder names
(conv_stem, bn1, blocks.N.M.conv_pw / conv_dw / se.conv_reduce / conv_pwl, conv_head on the
pooled map) and timm's functional hard_sigmoid / hard_swish (relu6(x + 3) / 6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_norm_act(cin, cout, k=3, s=1, groups=1, act=nn.ReLU6):
    layers = [nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class TVInvertedResidualV2(nn.Module):
    def __init__(self, inp, oup, stride, t):
        super().__init__()
        hidden = int(round(inp * t))
        self.use_res = stride == 1 and inp == oup
        layers = [conv_norm_act(inp, hidden, 1)] if t != 1 else []
        layers += [conv_norm_act(hidden, hidden, 3, stride, hidden),
                   nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class TVMobileNetV2(nn.Module):
    """torchvision.models.MobileNetV2 (width_mult, round_nearest 8)."""

    SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
               [6, 160, 3, 2], [6, 320, 1, 1]]

    def __init__(self, width=1.0, classes=1000):
        super().__init__()
        cin = make_divisible(32 * width)
        self.last = make_divisible(1280 * max(1.0, width))
        feats = [conv_norm_act(3, cin, 3, 2)]
        for t, c, n, s in self.SETTING:
            out = make_divisible(c * width)
            for i in range(n):
                feats.append(TVInvertedResidualV2(cin, out, s if i == 0 else 1, t))
                cin = out
        feats.append(conv_norm_act(cin, self.last, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last, classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class TVSqueezeExcitation(nn.Module):
    def __init__(self, c, squeeze):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)
        self.activation, self.scale_activation = nn.ReLU(), nn.Hardsigmoid()

    def forward(self, x):
        s = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return s * x


# in, kernel, expanded, out, SE, activation, stride (torchvision _mobilenet_v3_conf)
V3_SMALL = [(16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2),
            (24, 3, 88, 24, False, "RE", 1), (24, 5, 96, 40, True, "HS", 2),
            (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
            (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1),
            (48, 5, 288, 96, True, "HS", 2), (96, 5, 576, 96, True, "HS", 1),
            (96, 5, 576, 96, True, "HS", 1)]


class TVInvertedResidualV3(nn.Module):
    def __init__(self, cin, k, exp, out, se, act, stride):
        super().__init__()
        a = nn.Hardswish if act == "HS" else nn.ReLU
        layers = [conv_norm_act(cin, exp, 1, act=a)] if exp != cin else []
        layers.append(conv_norm_act(exp, exp, k, stride, exp, act=a))
        if se:
            layers.append(TVSqueezeExcitation(exp, make_divisible(exp // 4)))
        layers.append(conv_norm_act(exp, out, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == out

    def forward(self, x):
        return x + self.block(x) if self.use_res else self.block(x)


class TVMobileNetV3Small(nn.Module):
    """torchvision.models.mobilenet_v3_small."""

    def __init__(self, classes=1000):
        super().__init__()
        layers = [conv_norm_act(3, 16, 3, 2, act=nn.Hardswish)]
        layers += [TVInvertedResidualV3(*c) for c in V3_SMALL]
        layers.append(conv_norm_act(96, 576, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(576, 1024), nn.Hardswish(inplace=True),
                                        nn.Dropout(0.2), nn.Linear(1024, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ---- timm-like: efficientnet-builder names, functional hard activations ----------------------------

def hard_sigmoid(x):
    return F.relu6(x + 3.0) / 6.0


def hard_swish(x):
    return x * F.relu6(x + 3.0) / 6.0


class Act(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        return F.relu(x) if self.kind == "RE" else hard_swish(x)


class BatchNormAct2d(nn.BatchNorm2d):
    def __init__(self, c, act=None):
        super().__init__(c)
        self.act = Act(act) if act else nn.Identity()

    def forward(self, x):
        return self.act(super().forward(x))


class TimmSqueezeExcite(nn.Module):
    def __init__(self, c, rd):
        super().__init__()
        self.conv_reduce, self.act1 = nn.Conv2d(c, rd, 1), nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(rd, c, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * hard_sigmoid(self.conv_expand(self.act1(self.conv_reduce(s))))


class TimmDepthwiseSeparable(nn.Module):
    def __init__(self, cin, k, out, se, act, stride):
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, k, stride, k // 2, groups=cin, bias=False)
        self.bn1 = BatchNormAct2d(cin, act)
        self.se = TimmSqueezeExcite(cin, make_divisible(cin * 0.25)) if se else nn.Identity()
        self.conv_pw, self.bn2 = nn.Conv2d(cin, out, 1, bias=False), BatchNormAct2d(out)
        self.res = stride == 1 and cin == out

    def forward(self, x):
        y = self.bn2(self.conv_pw(self.se(self.bn1(self.conv_dw(x)))))
        return x + y if self.res else y


class TimmInvertedResidual(nn.Module):
    def __init__(self, cin, k, mid, out, se, act, stride):
        super().__init__()
        self.conv_pw, self.bn1 = nn.Conv2d(cin, mid, 1, bias=False), BatchNormAct2d(mid, act)
        self.conv_dw = nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False)
        self.bn2 = BatchNormAct2d(mid, act)
        self.se = TimmSqueezeExcite(mid, make_divisible(mid * 0.25)) if se else nn.Identity()
        self.conv_pwl, self.bn3 = nn.Conv2d(mid, out, 1, bias=False), BatchNormAct2d(out)
        self.res = stride == 1 and cin == out

    def forward(self, x):
        y = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))
        y = self.bn3(self.conv_pwl(self.se(y)))
        return x + y if self.res else y


class TimmConvBnAct(nn.Module):
    def __init__(self, cin, out, act):
        super().__init__()
        self.conv, self.bn1 = nn.Conv2d(cin, out, 1, bias=False), BatchNormAct2d(out, act)

    def forward(self, x):
        return self.bn1(self.conv(x))


class TimmMobileNetV3Small(nn.Module):
    """timm's mobilenetv3_small_100 layout (stages of blocks.N.M, conv_head on the pool)."""

    def __init__(self, classes=1000):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn1 = BatchNormAct2d(16, "HS")
        stages, cur = [], []
        for i, (cin, k, exp, out, se, act, s) in enumerate(V3_SMALL):
            if s == 2 and cur:
                stages.append(nn.Sequential(*cur))
                cur = []
            cur.append(TimmDepthwiseSeparable(cin, k, out, se, act, s) if i == 0
                       else TimmInvertedResidual(cin, k, exp, out, se, act, s))
        stages += [nn.Sequential(*cur), nn.Sequential(TimmConvBnAct(96, 576, "HS"))]
        self.blocks = nn.Sequential(*stages)
        self.conv_head = nn.Conv2d(576, 1024, 1, bias=True)
        self.act2 = Act("HS")
        self.classifier = nn.Linear(1024, classes)

    def forward(self, x):
        x = self.blocks(self.bn1(self.conv_stem(x)))
        x = self.act2(self.conv_head(x.mean((2, 3), keepdim=True)))
        return self.classifier(torch.flatten(x, 1))


def export(module: nn.Module, resolution: int, path, dynamo: bool = False) -> None:
    import warnings

    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(1, 3, resolution, resolution),), str(path),
                          dynamo=dynamo, opset_version=17, input_names=["input"],
                          output_names=["logits"])


def bn_channels(module: nn.Module) -> int:
    return sum(m.num_features for m in module.modules() if isinstance(m, nn.BatchNorm2d))


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
