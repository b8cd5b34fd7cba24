"""The backbones and layers an appearance config may name, and what each computes.

Backbones (``AppearanceConfig.backbone``) and their layers (``AppearanceConfig.layer``):

==============================  =========================================  ====  =====
backbone                        layer (default first)                      C     stride
==============================  =========================================  ====  =====
``mobilenet_v2``                ``stride32`` = ``features.18`` (1x1 conv)  1280  32
                                ``stride16`` = ``features.13``             96    16
                                ``stride8``  = ``features.6``              32    8
                                ``stride4``  = ``features.3``              24    4
``resnet50``, ``resnet101``     ``layer4`` (C5)                            2048  32
                                ``layer3`` (C4), ``layer2``, ``layer1``    1024  16 ...
``resnet50_c4``,                ``c4``: RoIAlign on layer3 to 2R x 2R,     2048  16
``resnet101_c4``                then layer4 on each RoI -> R x R (the
                                classic Faster R-CNN C4 head)
``fasterrcnn_resnet50_fpn``,    ``fpn``: the detector's own                256   4 / 32
``fasterrcnn_mobilenet_v3_``    MultiScaleRoIAlign over its FPN levels
``large_fpn``                   (stride = the finest level's)
``osnet_x0_25``, ``osnet_x1_0`` ``conv5`` (1x1 conv, the last map)         128/  16
(OSNet re-ID, Zhou et al.                                                  512
2019; channels x0.25 / x1.0)    ``conv4``, ``conv3`` (= ``stride16``)      ...   16
                                ``conv2`` (= ``stride8``)                  64/   8
                                                                           256
                                ``head``: RoIAlign on conv5 to R x R,      512   16
                                then OSNet's own global average pool +
                                fc/BN/ReLU -> (N, 512, 1, 1) (``fc``)
                                ``crops``: no RoIAlign; each box cropped,  512   -
                                resized to 256x128 and run through the
                                whole network (classic DeepSORT)
==============================  =========================================  ====  =====

``features.N`` names the output of ``torchvision.models.mobilenet_v2().features[N]``;
``stride4``..``stride32`` (and ``c2``..``c5`` for ResNets) are accepted as aliases.

OSNet (:mod:`deeptrack.appearance.osnet`) takes torchreid-style checkpoints
(``conv1.conv.weight`` ... ``fc.0.weight``) strictly: every tensor of the
network must be there with its shape and nothing else may be, except the
training-time ``classifier.*``. Its ``head`` and ``crops`` layers give one
512-d vector per box as a 1x1 map, so every pooling mode reduces to L2
normalisation of OSNet's embedding. OSNet is trained on people about 256
pixels tall: ``image_scale`` should bring the frame's people near that height
(``configs/osnet_roi.yaml``).

The extractors that run them are in :mod:`deeptrack.appearance.backbone`, the
weights they load in :mod:`deeptrack.appearance.weights`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deeptrack.appearance.osnet import EMBEDDING_DIM, OSNET_LAYERS, OSNET_WIDTHS
from deeptrack.errors import ConfigError

__all__ = ["BACKBONES", "FRCNN_MODELS", "MOBILENET_LAYERS", "RESNET_LAYERS", "BackboneSpec",
           "resolve_spec"]

MOBILENET_LAYERS = {  # name: (number of features[] blocks kept, channels, stride)
    "stride4": (4, 24, 4),
    "stride8": (7, 32, 8),
    "stride16": (14, 96, 16),
    "stride32": (19, 1280, 32),
}
_MOBILENET_ALIASES = {"features.3": "stride4", "features.6": "stride8",
                      "features.13": "stride16", "features.18": "stride32"}
RESNET_LAYERS = {  # name: (index of the last residual stage kept, channels, stride)
    "layer1": (1, 256, 4), "layer2": (2, 512, 8), "layer3": (3, 1024, 16), "layer4": (4, 2048, 32),
}
_RESNET_ALIASES = {"c2": "layer1", "c3": "layer2", "c4": "layer3", "c5": "layer4",
                   "stride4": "layer1", "stride8": "layer2", "stride16": "layer3",
                   "stride32": "layer4"}
# OSNet: layers (OSNET_LAYERS) plus the two that end in its embedding head.
_OSNET_LAYERS = {**OSNET_LAYERS, "head": None, "crops": None}
_OSNET_ALIASES = {"stride8": "conv2", "stride16": "conv5", "fc": "head"}
FRCNN_MODELS = {  # name: (torchvision builder, stride of the finest FPN level)
    "fasterrcnn_resnet50_fpn": ("fasterrcnn_resnet50_fpn", 4),
    "fasterrcnn_mobilenet_v3_large_fpn": ("fasterrcnn_mobilenet_v3_large_fpn", 32),
}

#: Every backbone name :func:`resolve_spec` knows.
BACKBONES = (
    "mobilenet_v2", "resnet50", "resnet101", "resnet50_c4", "resnet101_c4", *FRCNN_MODELS,
    *OSNET_WIDTHS,
)


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone/layer choice computes.

    Attributes:
        backbone: the backbone name.
        layer: the canonical layer name.
        kind: ``map`` (RoIAlign on one map), ``c4`` (RoIAlign, then layer4 per
            RoI), ``fpn`` (the detector's multi-scale RoIAlign), ``head``
            (RoIAlign, then OSNet's embedding head per RoI) or ``crops``
            (whole network per resized crop, no RoIAlign).
        out_channels: C of the (N, C, R, R) RoI maps.
        stride: pixels per cell of the map RoIs are pooled from (the finest
            level for ``fpn``).
        roi_size: R, side of the output RoI maps (1 for ``head``, ``crops``).
        align_size: side of the RoIAlign output (2R for ``c4``, the configured
            ``roi_size`` for ``head``, else R).
    """

    backbone: str
    layer: str
    kind: str
    out_channels: int
    stride: int
    roi_size: int
    align_size: int


def _pick_layer(backbone: str, layer: str | None, valid: Mapping[str, Any],
                aliases: Mapping[str, str], default: str) -> str:
    if layer is None:
        return default
    name = aliases.get(str(layer).lower(), str(layer).lower())
    if name not in valid:
        names = ", ".join([*valid, *aliases])
        raise ConfigError(f"config key 'layer' = {layer!r} is not a layer of {backbone}; "
                          f"expected one of: {names}")
    return name


def resolve_spec(backbone: str, layer: str | None = None, roi_size: int = 7) -> BackboneSpec:
    """Resolve a backbone name and layer (None = default) to its :class:`BackboneSpec`.

    Raises:
        ConfigError: an unknown backbone or layer (the valid names are listed).
    """
    name = str(backbone).lower()
    if name == "mobilenet_v2":
        lay = _pick_layer(name, layer, MOBILENET_LAYERS, _MOBILENET_ALIASES, "stride32")
        _, ch, st = MOBILENET_LAYERS[lay]
        return BackboneSpec(name, lay, "map", ch, st, roi_size, roi_size)
    if name in ("resnet50", "resnet101"):
        lay = _pick_layer(name, layer, RESNET_LAYERS, _RESNET_ALIASES, "layer4")
        _, ch, st = RESNET_LAYERS[lay]
        return BackboneSpec(name, lay, "map", ch, st, roi_size, roi_size)
    if name in ("resnet50_c4", "resnet101_c4"):
        _pick_layer(name, layer, {"c4": None}, {"layer3": "c4"}, "c4")
        return BackboneSpec(name, "c4", "c4", 2048, 16, roi_size, 2 * roi_size)
    if name in FRCNN_MODELS:
        _pick_layer(name, layer, {"fpn": None}, {}, "fpn")
        return BackboneSpec(name, "fpn", "fpn", 256, FRCNN_MODELS[name][1], roi_size, roi_size)
    if name in OSNET_WIDTHS:
        lay = _pick_layer(name, layer, _OSNET_LAYERS, _OSNET_ALIASES, "conv5")
        if lay in ("head", "crops"):  # one embedding per box, as a 1x1 map
            return BackboneSpec(name, lay, lay, EMBEDDING_DIM, 16, 1, roi_size)
        width, st = OSNET_LAYERS[lay]
        return BackboneSpec(name, lay, "map", OSNET_WIDTHS[name][width], st, roi_size, roi_size)
    raise ConfigError(f"config key 'backbone' = {backbone!r} is unknown; expected one of: "
                      f"{', '.join(BACKBONES)}")
