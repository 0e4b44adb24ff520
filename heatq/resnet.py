"""ResNet-20 (He et al. 2016, CIFAR variant) with heatq's quantized steps, exact in the IR.

Structure: ``stem`` (3x3 conv + BN + quantized ReLU, ``width`` channels), three stages of
``blocks`` basic blocks (``width``, ``2 width``, ``4 width`` channels; the first block of
stages 2 and 3 has a stride-2 3x3 conv and a 1x1 stride-2 projection shortcut), ``pool``
(global average pooling), ``fc`` (linear -> the output code's logits).  ``blocks = 3`` is
ResNet-20 (6 * 3 + 2 weighted layers on the main path).

What it adds to the integer semantics (docs/resnet.md):

* **Batch norm is folded into the convolution before quantization** (:class:`QConvBN`): float
  training uses a real BatchNorm2d; the switch to quantized training (``set_mode("quant")`` or
  ``"heat"``) folds its running statistics into the conv's weights and bias once,
  ``w' = w * gamma / sqrt(var + eps)``, ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``,
  and QAT then trains the folded layer, quantized like every other layer (one power-of-two
  scale per layer).  The IR sees a plain CONV2D.  Folding, not per-channel THRESHOLDs,
  because the residual sum needs the normalised value as a number (the ADD comes before the
  ReLU), and a folded layer is an ordinary product that every target, the splitting passes
  and the adder graphs already take.
* **Residual ADD** (:class:`QAdd`): main path + shortcut at the finer of their binary points,
  the coarser one shifted left exactly (IR: :func:`heatq.ir.residual.aligned_add`).
* **Stride-2 convolution**: :class:`heatq.quant.QConv2d` with ``stride=2`` (IR CONV2D stride 2).
* **Global average pooling** (:class:`QGlobalAvgPool`): the sum over ``H x W = 2**k``
  positions with the binary point moved by ``k`` (IR GLOBAL_AVGPOOL); any other count is
  refused when the model is built.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import UserError
from .ir.ops.global_avgpool import pooled_log2
from .quant import QConv2d, QLinear, QReLU, QuantStep


class QConvBN(QConv2d):
    """:class:`QConv2d` followed by BatchNorm2d while in float mode; leaving float mode folds
    the batch norm into the weights and bias (once: the ``bn_folded`` buffer records it and
    travels with the state dict).  After folding the BN parameters are frozen and unused."""

    def __init__(self, c_in: int, c_out: int, kernel: int, bits: int = 4, stride: int = 1):
        super().__init__(c_in, c_out, kernel, bits, stride)
        self.bn = nn.BatchNorm2d(c_out)
        self.register_buffer("bn_folded", torch.tensor(False))

    @property
    def mode(self) -> str:
        return self.__dict__.get("_mode", "float")

    @mode.setter
    def mode(self, value: str) -> None:
        self.__dict__["_mode"] = value
        if value != "float" and "bn" in self._modules:
            self.fold_bn()

    @property
    def folded(self) -> bool:
        """Whether the batch norm is in the weights (every quantized forward)."""
        return bool(self.bn_folded)

    @torch.no_grad()
    def fold_bn(self) -> None:
        """Fold the batch norm's running statistics and affine into weight and bias (idempotent)."""
        if self.folded:
            return
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        self.weight.mul_(scale.view(-1, 1, 1, 1))
        self.bias.copy_((self.bias - bn.running_mean) * scale + bn.bias)
        self.bn_folded.fill_(True)
        for p in bn.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor, frac: int) -> tuple[torch.Tensor, int]:
        if self.folded:
            return super().forward(x, frac)
        y = F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)
        return self.bn(y), frac


class QAdd(QuantStep):
    """The residual sum of several ``(value, frac)``: exact, at the finest binary point (the
    coarser values' integers shifted left, as :func:`heatq.ir.residual.aligned_add` does)."""

    def forward(self, values: list[torch.Tensor], fracs: list[int]) -> tuple[torch.Tensor, int]:
        out = values[0]
        for v in values[1:]:
            out = out + v
        return out, max(fracs)


class QGlobalAvgPool(QuantStep):
    """Mean over H x W = 2**k positions: the sum, binary point + k ([N, C, H, W] -> [N, C])."""

    def forward(self, x: torch.Tensor, frac: int) -> tuple[torch.Tensor, int]:
        k = pooled_log2(tuple(int(d) for d in x.shape[1:]))  # the IR op's own rule
        return x.sum(dim=(2, 3)) * (2.0 ** -k), frac + k


def _conv_act(c_in: int, c_out: int, w_bits: int, a_bits: int) -> nn.Module:
    block = nn.Module()
    block.conv = QConvBN(c_in, c_out, 3, w_bits)
    block.act = QReLU(a_bits)
    return block


class BasicBlock(nn.Module):
    """``act2(conv2(act1(conv1(x))) + shortcut(x))``; conv1 has the stride; the shortcut is
    the identity, or a 1x1 projection (conv + BN, stride) when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, w_bits: int, a_bits: int) -> None:
        super().__init__()
        self.conv1 = QConvBN(c_in, c_out, 3, w_bits, stride)
        self.act1 = QReLU(a_bits)
        self.conv2 = QConvBN(c_out, c_out, 3, w_bits)
        if stride != 1 or c_in != c_out:
            self.shortcut = QConvBN(c_in, c_out, 1, w_bits, stride)
        self.add = QAdd()
        self.act2 = QReLU(a_bits)

    def walk(self, walker, x, frac: int, name: str):
        """Thread ``(x, frac)`` through the block with ``walker`` (see
        :func:`heatq.models.walk`): its ``step`` for each step, its ``add`` for the sum."""
        y, f = walker.step(f"{name}.conv1", self.conv1, x, frac)
        y, f = walker.step(f"{name}.act1", self.act1, y, f)
        y, f = walker.step(f"{name}.conv2", self.conv2, y, f)
        s, sf = (walker.step(f"{name}.shortcut", self.shortcut, x, frac)
                 if "shortcut" in self._modules else (x, frac))
        y, f = walker.add(f"{name}.add", self.add, [y, s], [f, sf])
        return walker.step(f"{name}.act2", self.act2, y, f)


def pooled_side(image_size: int) -> int:
    """The side of the last feature map: two stride-2 3x3 convs (padding 1) halve it, rounding up."""
    side = int(image_size)
    for _ in range(2):
        side = (side - 1) // 2 + 1
    return side


def resnet20(in_channels: int, code_length: int, w_bits: int = 4, a_bits: int = 4,
             image_size: int = 32, width: int = 16, blocks: int = 3):
    """ResNet-(6 * blocks + 2) on ``in_channels`` x ``image_size`` x ``image_size`` inputs
    (binary code planes), ``width`` channels in stage 1; UserError when the last map's
    ``side x side`` positions are not a power of two (layer ``pool``)."""
    from .models import QNet

    if image_size < 4:
        raise UserError(f"resnet20 needs images of at least 4x4, got {image_size}x{image_size}")
    if width < 1 or blocks < 1:
        raise UserError(f"resnet20: width and blocks must be >= 1, got {width}, {blocks}")
    side = pooled_side(image_size)
    n = side * side
    if n & (n - 1):
        raise UserError(f"resnet20: layer pool would average {side}x{side} = {n} positions of "
                        f"{image_size}x{image_size} images, not a power of two (the pool is an "
                        "exact sum and shift only then); use a side of 4 * 2**k, e.g. 32 "
                        "(dataset fashion32x3 or cifar10:DIR)")
    parts: dict[str, nn.Module] = {"stem": _conv_act(in_channels, width, w_bits, a_bits)}
    c_in = width
    for s, c_out in enumerate((width, 2 * width, 4 * width), 1):
        stage = nn.Module()
        for b in range(1, blocks + 1):
            stride = 2 if (s > 1 and b == 1) else 1
            stage.add_module(f"block{b}", BasicBlock(c_in, c_out, stride, w_bits, a_bits))
            c_in = c_out
        parts[f"stage{s}"] = stage
    parts["pool"] = QGlobalAvgPool()
    head = nn.Module()
    head.lin = QLinear(c_in, code_length, w_bits)
    parts["fc"] = head
    spec = {"model": "resnet20", "in_channels": in_channels, "code_length": code_length,
            "w_bits": w_bits, "a_bits": a_bits, "image_size": image_size, "width": width,
            "blocks": blocks}
    return QNet(parts, (in_channels, image_size, image_size), spec)
