"""OSNet, the omni-scale person re-identification network (Zhou et al., ICCV 2019).

Written from the paper; module names follow the layout of the widely shared
torchreid checkpoints (``conv1.conv.weight``, ``conv2.0.conv2a.conv1.weight``,
``fc.0.weight`` ...), so those files load as they are.

Layout, for stage widths ``(c1, c2, c3, c4)`` (x1.0: 64/256/384/512;
x0.25: 16/64/96/128) on a 256x128 input:

=========  ============================================  ======  =====  =======
name       what                                          C       stride  map
=========  ============================================  ======  =====  =======
conv1      7x7 conv stride 2 + BN + ReLU, 3x3 max pool    c1      4      64x32
conv2      2 OS blocks -> c2; transition (1x1 conv +      c2      8      32x16
           BN + ReLU, 2x2 average pool)
conv3      2 OS blocks -> c3; transition                  c3      16     16x8
conv4      2 OS blocks -> c4                              c4      16     16x8
conv5      1x1 conv + BN + ReLU                           c4      16     16x8
fc         global average pool, Linear(c4, 512) +         512     -      -
           BatchNorm1d + ReLU: the re-ID embedding
=========  ============================================  ======  =====  =======

An OS block (the paper's Fig. 4): a 1x1 conv (+BN+ReLU) reduces the input to
``c / 4`` channels; four streams of 1, 2, 3 and 4 Lite 3x3 layers (pointwise
1x1 conv, then depthwise 3x3 conv, BN, ReLU) see receptive fields of growing
size; one aggregation gate, shared by the four streams, weighs each stream's
output channel-wise (global average pool -> 1x1 conv to 1/16 of the
bottleneck width -> ReLU -> 1x1 conv back -> sigmoid) and the weighted streams
are summed; a 1x1 conv (+BN, no ReLU) expands back to ``c``; the input
(through a 1x1 conv + BN when the width changes) is added and a ReLU closes
the block. No instance
normalisation is used (the checkpoints have none).

The training-time identity classifier (``classifier.*``) is not part of this
module: deeptrack only uses the 512-d embedding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from deeptrack.errors import WeightsError

__all__ = [
    "EMBEDDING_DIM",
    "INPUT_SIZE",
    "OSNET_LAYERS",
    "OSNET_WIDTHS",
    "OSNet",
    "OSNetHead",
    "check_osnet_state",
]

#: (height, width) of the crops OSNet is trained on.
INPUT_SIZE = (256, 128)
#: Output size of the ``fc`` embedding head.
EMBEDDING_DIM = 512
#: Stage widths (conv1, conv2, conv3, conv4/conv5) of the published variants.
OSNET_WIDTHS = {
    "osnet_x1_0": (64, 256, 384, 512),
    "osnet_x0_25": (16, 64, 96, 128),
}
#: Layers whose output a trunk may end at: name -> (index into the widths, stride).
OSNET_LAYERS = {"conv2": (1, 8), "conv3": (2, 16), "conv4": (3, 16), "conv5": (3, 16)}

_STAGES = ("conv1", "maxpool", "conv2", "conv3", "conv4", "conv5")
# Training-time keys a checkpoint may carry that the embedding does not use.
_IGNORED_PREFIXES = ("classifier.",)
_BLOCK_REDUCTION = 4   # bottleneck width = block width / 4
_GATE_REDUCTION = 16   # gate hidden width = bottleneck width / 16
_STREAMS = ("conv2a", "conv2b", "conv2c", "conv2d")  # 1, 2, 3 and 4 Lite 3x3 layers


class _ConvBN(nn.Module):
    """conv (no bias) + BatchNorm (+ ReLU): the ``.conv`` / ``.bn`` pair of the checkpoints."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return x.relu_() if self.relu else x


class _Lite3x3(nn.Module):
    """Pointwise 1x1 conv, depthwise 3x3 conv, BN, ReLU (the paper's Lite 3x3, Fig. 3c)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv2(self.conv1(x))).relu_()


class _AggregationGate(nn.Module):
    """Channel weights in (0, 1) from a stream's global context; one instance serves all streams."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(1, channels // _GATE_REDUCTION)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(w))))


class _OSBlock(nn.Module):
    """Omni-scale residual bottleneck: four gated streams of 1-4 Lite 3x3 layers."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = c_out // _BLOCK_REDUCTION
        self.conv1 = _ConvBN(c_in, mid, 1)
        # conv2a is one Lite layer; conv2b..conv2d stack 2..4 of them.
        self.conv2a = _Lite3x3(mid)
        self.conv2b = nn.Sequential(*(_Lite3x3(mid) for _ in range(2)))
        self.conv2c = nn.Sequential(*(_Lite3x3(mid) for _ in range(3)))
        self.conv2d = nn.Sequential(*(_Lite3x3(mid) for _ in range(4)))
        self.gate = _AggregationGate(mid)
        self.conv3 = _ConvBN(mid, c_out, 1, relu=False)
        self.downsample = _ConvBN(c_in, c_out, 1, relu=False) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv1(x)
        fused = self.gate(self.conv2a(z))
        for stream in (self.conv2b, self.conv2c, self.conv2d):
            fused += self.gate(stream(z))
        shortcut = x if self.downsample is None else self.downsample(x)
        return (self.conv3(fused) + shortcut).relu_()


def _stage(c_in: int, c_out: int, transition: bool) -> nn.Sequential:
    """Two OS blocks, then (between stages) a 1x1 conv and 2x2 average pooling."""
    layers: list[nn.Module] = [_OSBlock(c_in, c_out), _OSBlock(c_out, c_out)]
    if transition:
        layers.append(nn.Sequential(_ConvBN(c_out, c_out, 1), nn.AvgPool2d(2, stride=2)))
    return nn.Sequential(*layers)


class OSNetHead(nn.Module):
    """Global average pooling and OSNet's ``fc`` head, on any (K, C, h, w) maps.

    Applied to RoI maps it gives OSNet's own embedding of each RoI; applied to
    the conv5 maps of 256x128 crops it is the network's output.

    Args:
        fc: the ``Linear -> BatchNorm1d -> ReLU`` sequence of an :class:`OSNet`.
    """

    def __init__(self, fc: nn.Module) -> None:
        super().__init__()
        self.fc = fc

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """Return (K, 512, 1, 1) embeddings (not normalised) of (K, C, h, w) maps."""
        return self.fc(maps.mean(dim=(2, 3)))[:, :, None, None]


class OSNet(nn.Module):
    """OSNet feature extractor with its 512-d embedding head (no identity classifier).

    Args:
        widths: ``(c1, c2, c3, c4)`` stage widths, e.g. ``OSNET_WIDTHS["osnet_x0_25"]``.
        embedding_dim: output size of the ``fc`` head.

    ``forward`` maps a normalised (B, 3, H, W) batch (ImageNet mean/std, RGB)
    to (B, embedding_dim) embeddings, as the network was trained to on
    256x128 crops; :meth:`trunk` and :meth:`head` give the parts the RoI path
    uses.
    """

    def __init__(self, widths: Sequence[int], embedding_dim: int = EMBEDDING_DIM) -> None:
        super().__init__()
        c1, c2, c3, c4 = (int(c) for c in widths)
        self.widths = (c1, c2, c3, c4)
        self.conv1 = _ConvBN(3, c1, 7, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = _stage(c1, c2, transition=True)
        self.conv3 = _stage(c2, c3, transition=True)
        self.conv4 = _stage(c3, c4, transition=False)
        self.conv5 = _ConvBN(c4, c4, 1)
        self.fc = nn.Sequential(nn.Linear(c4, embedding_dim), nn.BatchNorm1d(embedding_dim),
                                nn.ReLU())
        self._init_random()

    def _init_random(self) -> None:
        # He initialisation for convs, unit BN: random-weight runs (tests, speed) stay in range.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def trunk(self, layer: str = "conv5") -> nn.Sequential:
        """Return the layers from the input up to ``layer`` (shared modules, not copies).

        Raises:
            ValueError: ``layer`` is not one of :data:`OSNET_LAYERS`.
        """
        if layer not in OSNET_LAYERS:
            raise ValueError(f"OSNet layer {layer!r} unknown; expected one of "
                             f"{', '.join(OSNET_LAYERS)}")
        return nn.Sequential(*(getattr(self, s) for s in _STAGES[:_STAGES.index(layer) + 1]))

    def fuse_batchnorm_(self) -> OSNet:
        """Fold each BatchNorm2d into the conv before it, in place; for inference only.

        The folded network computes the same function (to float rounding,
        tests/test_osnet.py) with 80 fewer passes over the activations: 1.2x
        faster on the CPU (benchmarks/results/bench_osnet.md, "BatchNorm
        folding"). Its
        ``state_dict`` no longer has the checkpoints' layout, so load weights
        first. The ``fc`` head's BatchNorm1d is left as it is (one row per box).

        Raises:
            RuntimeError: the model is in training mode (batch statistics).
        """
        if self.training:
            raise RuntimeError("fuse_batchnorm_ needs eval mode: call .eval() first")
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, _ConvBN) and isinstance(m.bn, nn.BatchNorm2d):
                    m.bn = _fold_into(m.conv, m.bn)
                elif isinstance(m, _Lite3x3) and isinstance(m.bn, nn.BatchNorm2d):
                    m.bn = _fold_into(m.conv2, m.bn)
        return self

    def head(self) -> OSNetHead:
        """Return the embedding head (global average pool + ``fc``), sharing ``fc``."""
        return OSNetHead(self.fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (B, 512) embeddings of a normalised (B, 3, H, W) batch."""
        for s in _STAGES:
            x = getattr(self, s)(x)
        return self.fc(x.mean(dim=(2, 3)))


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Identity:
    """Give ``conv`` the weights and bias of ``bn(conv(x))``; return what replaces ``bn``."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    conv.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    conv.bias = nn.Parameter(bias)
    return nn.Identity()


def check_osnet_state(model: OSNet, state: Mapping[str, torch.Tensor],
                      source: str) -> dict[str, torch.Tensor]:
    """Check a torchreid-style OSNet ``state_dict`` against ``model`` key by key.

    Every tensor of the model must be present with its shape, and every tensor
    of the file must belong to the model, except the training-time identity
    classifier (``classifier.*``, sized by the training set's identities),
    which is dropped.

    Returns:
        ``state`` without the ignored keys, ready for loading.

    Raises:
        WeightsError: naming the missing, unexpected or mis-shaped keys.
    """
    own = model.state_dict()
    used = {k: v for k, v in state.items() if not k.startswith(_IGNORED_PREFIXES)}
    missing = [k for k in own if k not in used and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in used if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} of the model's tensors "
                         f"(first: {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (first: "
                         f"{', '.join(unexpected[:3])})")
        raise WeightsError(f"{source} does not fit OSNet {model.widths}: {'; '.join(parts)}; "
                           f"expected an OSNet state_dict with torchreid's key names")
    for k, v in used.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise WeightsError(f"{source}: tensor {k} has shape {tuple(v.shape)}, OSNet "
                               f"{model.widths} needs {tuple(own[k].shape)} (another width?)")
    return used
