"""Backbone weights: read from a file or torchvision, applied strictly to a model.

Weights are never fetched silently: :func:`read_weights` takes a local
``state_dict`` file, a torchvision weights name (which downloads, and fails
with :class:`~deeptrack.errors.WeightsError` offline), or ``None`` for random
initialisation (tests). A file may hold only the convolutional part; every
tensor the feature path needs must be present with the right shape, or a
:class:`~deeptrack.errors.WeightsError` says which is missing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from deeptrack.appearance.digest import file_sha256
from deeptrack.errors import WeightsError

__all__ = ["apply_weights", "read_weights"]

logger = logging.getLogger(__name__)

_TORCHVISION_WEIGHTS = re.compile(r"[A-Za-z][A-Za-z0-9_]*_Weights\.[A-Za-z0-9_]+")


def _as_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and len(obj) == 1:
        (only,) = obj.values()
        if next(iter(obj)) in ("state_dict", "model") and isinstance(only, Mapping):
            obj = only  # a checkpoint that wraps its state_dict
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{source} does not hold a state_dict (a mapping of names to "
                           f"tensors); got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{source} is not a plain state_dict: entry {bad[0]!r} is not a tensor")
    return dict(obj)


def read_weights(weights: str | None) -> tuple[dict[str, torch.Tensor] | None, str]:
    """Read weights named in ``AppearanceConfig.weights``.

    Args:
        weights: a local file holding a ``state_dict`` (read with
            ``torch.load(weights_only=True)``), a torchvision weights name such
            as ``"MobileNet_V2_Weights.IMAGENET1K_V1"`` (downloaded by
            torchvision, so it needs the internet or torch's hub cache), or
            None for random initialisation.

    Returns:
        ``(state_dict or None, identity)``; ``identity`` goes into the cache
        key: ``sha256:<hex>`` of the file, ``torchvision:<resolved name>``, or
        ``random`` for None.

    Raises:
        WeightsError: a missing or unreadable file (naming its path), an
            unknown torchvision name, or a download that failed.
    """
    if weights is None:
        return None, "random"
    path = Path(weights).expanduser()
    if path.is_file():
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
            raise WeightsError(f"cannot read weights file {path}: {e}") from None
        return _as_state_dict(obj, f"weights file {path}"), f"sha256:{file_sha256(path)}"
    if path.exists():
        raise WeightsError(f"weights path {path} is not a file")
    if not _TORCHVISION_WEIGHTS.fullmatch(str(weights)):
        raise WeightsError(f"weights file not found: {path} (give a state_dict file, a "
                           f"torchvision weights name like ResNet50_Weights.DEFAULT, or null)")
    try:
        enum = torchvision.models.get_weight(str(weights))
    except (ValueError, KeyError, AttributeError) as e:
        raise WeightsError(f"unknown torchvision weights name {weights!r}: {e}") from None
    try:
        state = enum.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # noqa: BLE001 - URLError, OSError, RuntimeError (hash) ...
        raise WeightsError(
            f"could not get torchvision weights {enum} ({type(e).__name__}: {e}); without "
            f"internet access, download the file elsewhere and pass its local path as weights"
        ) from None
    return _as_state_dict(state, f"torchvision weights {enum}"), f"torchvision:{enum}"


def apply_weights(
    model: nn.Module, state: Mapping[str, torch.Tensor], needed_prefixes: Sequence[str],
    source: str,
) -> None:
    """Load ``state`` into ``model``, insisting on every tensor the feature path needs.

    Tensors outside ``needed_prefixes`` (e.g. a classifier) may be absent; a
    needed one that is absent or has the wrong shape is an error, so a model
    never runs half-random.

    Raises:
        WeightsError: naming the missing or mismatched keys.
    """
    own = model.state_dict()
    prefixes = tuple(needed_prefixes)
    needed = [k for k in own if k.startswith(prefixes) and not k.endswith("num_batches_tracked")]
    missing = [k for k in needed if k not in state]
    if missing:
        raise WeightsError(
            f"{source} lacks {len(missing)} of the {len(needed)} tensors the feature path needs "
            f"(first: {', '.join(missing[:3])}); is it a {type(model).__name__} state_dict with "
            f"torchvision's key names?"
        )
    for k in needed:
        if tuple(state[k].shape) != tuple(own[k].shape):
            raise WeightsError(f"{source}: tensor {k} has shape {tuple(state[k].shape)}, "
                               f"the model needs {tuple(own[k].shape)}")
    extra = [k for k in state if k not in own]
    if extra:
        logger.warning("%s: %d tensors do not belong to the model and are ignored (first: %s)",
                       source, len(extra), extra[0])
    load = {k: v for k, v in state.items()
            if k in own and k.startswith(prefixes) and v.shape == own[k].shape}
    model.load_state_dict(load, strict=False)
