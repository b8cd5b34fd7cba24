"""Seeded synthetic scenes with known identities, for tests, benchmarks and the demo.

Objects move at constant velocity with a little acceleration noise inside the
image; one that leaves is replaced by a new identity entering from a border,
so a long scene keeps creating and ending tracks. Each identity has its own
unit appearance vector, observed with per-frame noise. Detections suffer box
jitter, random misses, occlusion gaps of several frames and false positives;
paths cross freely. Everything is drawn from one ``np.random.Generator``
seeded by the caller: the same arguments give the same scene.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deeptrack.errors import InputError


@dataclass(frozen=True)
class SyntheticFrame:
    """One frame of a synthetic scene.

    Attributes:
        boxes: (N, 4) xyxy detections (shuffled; false positives included).
        scores: (N,) detection scores.
        embeddings: (N, D) float32 appearance vectors (unit length).
        det_ids: (N,) true identity of each detection, -1 for a false positive.
        gt_boxes: (M, 4) xyxy true boxes of every object in view, detected or not.
        gt_ids: (M,) their identities.
    """

    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]
    embeddings: NDArray[np.float32]
    det_ids: NDArray[np.int64]
    gt_boxes: NDArray[np.float64]
    gt_ids: NDArray[np.int64]


@dataclass(frozen=True)
class SyntheticScene:
    """A whole synthetic sequence."""

    frames: list[SyntheticFrame]
    width: int
    height: int
    frame_rate: float
    embedding_dim: int

    def __len__(self) -> int:
        return len(self.frames)


def _unit(x: NDArray) -> NDArray[np.float32]:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_scene(
    n_objects: int = 10, n_frames: int = 200, *, frame_rate: float = 30.0, **options: Any
) -> SyntheticScene:
    """Generate a scene with ``n_objects`` objects in view at all times.

    Args:
        n_objects: objects in view in every frame.
        n_frames: frames in the scene.
        frame_rate: frames per second the scene claims.
        **options: the keyword arguments of :func:`iter_scene` (seed, image
            size, noise, misses, occlusions, false positives), with its defaults.

    Returns:
        The scene.

    Raises:
        InputError: a negative count, a non-finite or out-of-range parameter.
        TypeError: an option :func:`iter_scene` does not take.
    """
    frames = list(iter_scene(n_objects, n_frames, **options))
    _check_number("frame_rate", frame_rate, low=0.0)
    # iter_scene's signature is the one list of options and their defaults
    given = inspect.signature(iter_scene).bind(n_objects, n_frames, **options)
    given.apply_defaults()
    opts = given.arguments
    return SyntheticScene(frames, opts["width"], opts["height"], frame_rate, opts["embedding_dim"])


def iter_scene(
    n_objects: int = 10,
    n_frames: int = 200,
    *,
    seed: int = 0,
    width: int = 1920,
    height: int = 1080,
    embedding_dim: int = 128,
    appearance_noise: float = 0.3,
    box_jitter: float = 0.02,
    speed: float = 4.0,
    accel_noise: float = 0.05,
    p_miss: float = 0.05,
    p_occlusion: float = 0.005,
    occlusion_frames: tuple[int, int] = (3, 10),
    fp_per_frame: float = 0.5,
    empty_frames: tuple[int, ...] = (),
) -> Iterator[SyntheticFrame]:
    """Yield the frames of a scene one at a time, holding none of them.

    :func:`make_scene` with the same arguments holds the same frames; a scene of
    any length costs the memory of one frame here (``benchmarks/soak.py``).

    Args:
        n_objects: objects in view in every frame.
        n_frames: frames in the scene.
        seed: seed of the scene's ``np.random.Generator``.
        width, height: image size in pixels.
        embedding_dim: dimension D of the appearance vectors.
        appearance_noise: norm of the per-frame noise added to an identity's
            unit vector (0.3 gives cosine distances of about 0.04 within an
            identity; distinct identities are about 1 apart).
        box_jitter: detection box noise, as a fraction of the box size.
        speed: typical speed, pixels per frame.
        accel_noise: velocity random walk, pixels per frame per frame.
        p_miss: probability that a visible object is not detected in a frame.
        p_occlusion: per object and frame, probability that an occlusion gap begins.
        occlusion_frames: (min, max) length of an occlusion gap, in frames.
        fp_per_frame: mean number of false positives per frame (Poisson).
        empty_frames: 0-based frames with no detections at all.

    Yields:
        One :class:`SyntheticFrame` per frame.

    Raises:
        InputError: a negative count, a non-finite or out-of-range parameter.
    """
    if n_objects < 0 or n_frames < 0:
        raise InputError("n_objects and n_frames must be >= 0")
    for name, value, low in (("width", width, 1), ("height", height, 1),
                             ("embedding_dim", embedding_dim, 1), ("speed", speed, 0.0),
                             ("appearance_noise", appearance_noise, 0.0),
                             ("box_jitter", box_jitter, 0.0), ("accel_noise", accel_noise, 0.0),
                             ("fp_per_frame", fp_per_frame, 0.0)):
        _check_number(name, value, low=low, inclusive=True)
    for name, value in (("p_miss", p_miss), ("p_occlusion", p_occlusion)):
        _check_number(name, value, low=0.0, high=1.0, inclusive=True)
    if not 1 <= occlusion_frames[0] <= occlusion_frames[1]:
        raise InputError(f"occlusion_frames = {occlusion_frames!r} must be (min, max) with "
                         "1 <= min <= max")
    return _frames(
        n_objects, n_frames, seed, width, height, embedding_dim, appearance_noise, box_jitter,
        speed, accel_noise, p_miss, p_occlusion, occlusion_frames, fp_per_frame, empty_frames,
    )


def _frames(n_objects, n_frames, seed, width, height, embedding_dim, appearance_noise,
            box_jitter, speed, accel_noise, p_miss, p_occlusion, occlusion_frames,
            fp_per_frame, empty_frames) -> Iterator[SyntheticFrame]:
    rng = np.random.default_rng(seed)
    d = embedding_dim
    next_id = 0

    def spawn(k: int, anywhere: bool):
        nonlocal next_id
        h = rng.uniform(0.08, 0.3, k) * height
        w = h * rng.uniform(0.35, 0.5, k)
        angle = rng.uniform(0, 2 * np.pi, k)
        vel = np.stack([np.cos(angle), np.sin(angle)], 1) * (speed * rng.uniform(0.5, 1.5, k))[:, None]
        if anywhere:
            pos = rng.uniform([0.1 * width, 0.1 * height], [0.9 * width, 0.9 * height], (k, 2))
        else:  # just inside the border the velocity points away from
            pos = np.stack([np.where(vel[:, 0] > 0, 0.02 * width, 0.98 * width),
                            rng.uniform(0.1 * height, 0.9 * height, k)], 1)
        ids = np.arange(next_id, next_id + k)
        next_id += k
        base = _unit(rng.standard_normal((k, d)))
        return pos, vel, w, h, ids, base

    pos, vel, w, h, ids, base = spawn(n_objects, anywhere=True)
    gap = np.zeros(n_objects, np.int64)  # remaining occluded frames per object
    empty = set(empty_frames)
    for f in range(n_frames):
        vel = vel + rng.normal(0, accel_noise, vel.shape)
        pos = pos + vel
        out = (pos[:, 0] < 0) | (pos[:, 0] > width) | (pos[:, 1] < 0) | (pos[:, 1] > height)
        if out.any():
            k = int(out.sum())
            p2, v2, w2, h2, i2, b2 = spawn(k, anywhere=False)
            pos[out], vel[out], w[out], h[out], ids[out], base[out] = p2, v2, w2, h2, i2, b2
            gap[out] = 0
        gt_boxes = np.stack([pos[:, 0] - w / 2, pos[:, 1] - h / 2,
                             pos[:, 0] + w / 2, pos[:, 1] + h / 2], 1)

        start = (gap == 0) & (rng.random(n_objects) < p_occlusion)
        gap[start] = rng.integers(occlusion_frames[0], occlusion_frames[1] + 1, int(start.sum()))
        visible = (gap == 0) & (rng.random(n_objects) >= p_miss)
        gap = np.maximum(gap - 1, 0)
        if f in empty:
            visible[:] = False

        vb = gt_boxes[visible]
        size = np.repeat(vb[:, 2:] - vb[:, :2], 2, axis=0).reshape(-1, 4)
        det_boxes = vb + rng.normal(0, box_jitter, vb.shape) * size
        det_emb = _unit(base[visible] + appearance_noise * rng.standard_normal((len(vb), d))
                        / np.sqrt(d))
        det_ids = ids[visible]
        scores = rng.uniform(0.5, 1.0, len(vb))

        n_fp = 0 if f in empty else int(rng.poisson(fp_per_frame))
        fh = rng.uniform(0.08, 0.3, n_fp) * height
        fw = fh * rng.uniform(0.35, 0.5, n_fp)
        fx = rng.uniform(0, width - fw)
        fy = rng.uniform(0, height - fh)
        fp_boxes = np.stack([fx, fy, fx + fw, fy + fh], 1).reshape(-1, 4)
        det_boxes = np.concatenate([det_boxes, fp_boxes])
        det_emb = np.concatenate([det_emb, _unit(rng.standard_normal((n_fp, d))).reshape(-1, d)])
        det_ids = np.concatenate([det_ids, np.full(n_fp, -1)])
        scores = np.concatenate([scores, rng.uniform(0.3, 0.7, n_fp)])

        # Degenerate jitter cannot flip a box: widths stay positive.
        det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2] + 1.0)
        order = rng.permutation(len(det_boxes))
        yield SyntheticFrame(
            det_boxes[order], scores[order], det_emb[order].astype(np.float32),
            det_ids[order].astype(np.int64), gt_boxes, ids.astype(np.int64).copy(),
        )



def _check_number(name: str, value: float, *, low: float, high: float | None = None,
                  inclusive: bool = False) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)
    ok = ok and (value >= low if inclusive else value > low) and (high is None or value <= high)
    if not ok:
        bound = f"{'>=' if inclusive else '>'} {low:g}" + (f" and <= {high:g}" if high else "")
        raise InputError(f"{name} = {value!r} must be a finite number {bound}")


def make_crossing_scene(
    *,
    seed: int = 0,
    embedding_dim: int = 64,
    appearance_noise: float = 0.3,
    approach_frames: int = 30,
    occluded_frames: int = 8,
    frame_rate: float = 30.0,
) -> SyntheticScene:
    """Two people walk towards each other, meet behind an occluder, and turn back.

    While they overlap neither is detected for ``occluded_frames`` frames;
    during the gap each reverses its direction. A constant-velocity motion
    model predicts that they kept going, so a motion-only tracker gives each
    one the other's identity when they reappear; appearance tells them apart.

    Identity 0 starts on the left, identity 1 on the right.
    """
    rng = np.random.default_rng(seed)
    d = embedding_dim
    base = _unit(rng.standard_normal((2, d)))
    width, height = 1280, 720
    w, h, y = 60.0, 160.0, 400.0
    v = 6.0
    meet_x = width / 2
    half = occluded_frames // 2
    # Both reach meet_x at the middle of the gap, where they turn.
    start = np.array([meet_x - v * (approach_frames + half), meet_x + v * (approach_frames + half)])
    frames = []
    total = 2 * approach_frames + occluded_frames
    for f in range(total):
        if f < approach_frames + half:
            x = start + np.array([v, -v]) * f
        else:  # turned back at the middle of the gap
            turn = approach_frames + half
            x = start + np.array([v, -v]) * turn - np.array([v, -v]) * (f - turn)
        gt_boxes = np.stack([x - w / 2, np.full(2, y - h / 2), x + w / 2, np.full(2, y + h / 2)], 1)
        hidden = approach_frames <= f < approach_frames + occluded_frames
        vis = np.array([not hidden, not hidden])
        boxes = gt_boxes[vis] + rng.normal(0, 0.5, (int(vis.sum()), 4))
        emb = _unit(base[vis] + appearance_noise * rng.standard_normal((int(vis.sum()), d))
                    / np.sqrt(d))
        frames.append(SyntheticFrame(
            boxes, np.full(len(boxes), 0.9), emb.astype(np.float32),
            np.flatnonzero(vis).astype(np.int64), gt_boxes, np.arange(2, dtype=np.int64),
        ))
    return SyntheticScene(frames, width, height, frame_rate, d)
