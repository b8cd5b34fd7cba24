"""The DeepSORT-style tracker: predict -> associate -> update -> lifecycle.

Written from Wojke, Bewley & Paulus, "Simple Online and Realtime Tracking
with a Deep Association Metric" (ICIP 2017), with the SORT-like motion-only
mode of Bewley et al. 2016 when no appearance is given, and the EMA
appearance memory of StrongSORT (Du et al. 2023) as an option.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from deeptrack._arrays import nonzero_2d
from deeptrack.association.assign import match_pairs
from deeptrack.association.cascade import cascade_lazy
from deeptrack.association.costs import iou_cost, l2_normalize
from deeptrack.association.gallery import Gallery
from deeptrack.boxes import iou_pairs, xyah_to_xyxy, xyxy_to_xyah
from deeptrack.config import TrackerConfig
from deeptrack.errors import InputError
from deeptrack.motion.gating import gate_pairs
from deeptrack.motion.kalman import BatchedKalman, FilterpyKalman
from deeptrack.tracking.scores import ScoreHistory
from deeptrack.tracking.track import INT_COLUMNS, Track, TrackState, TrackTable
from deeptrack.types import Detections, TrackOutput, as_2d_float

logger = logging.getLogger(__name__)

_CONFIRMED = int(TrackState.CONFIRMED)
_TENTATIVE = int(TrackState.TENTATIVE)
# Positions of the integer columns in TrackTable.ints.
_STATE, _ID, _HITS, _AGE, _FSU, _SLOT, _DET = (
    INT_COLUMNS.index(c) for c in
    ("state", "track_id", "hits", "age", "frames_since_update", "slot", "det_index"))
assert _FSU == _AGE + 1
_NO_MATCH = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # shared: read-only
for _a in _NO_MATCH:
    _a.flags.writeable = False


_BLAS_LIBS: list | None = None


class _BlasThreads:
    """Limit the loaded BLAS libraries to ``threads`` threads inside the block, then restore.

    threadpoolctl's ``limit()`` took ~25 us per call here (it re-reads every
    library's settings); this keeps the library handles, found once per
    process, and only reads and sets their thread counts (~3 us).
    """

    def __init__(self, threads: int) -> None:
        global _BLAS_LIBS
        if _BLAS_LIBS is None:
            from threadpoolctl import ThreadpoolController

            _BLAS_LIBS = [c for c in ThreadpoolController().lib_controllers
                          if c.user_api == "blas"]
        self.threads = threads
        self.previous: list[int] = []

    def __enter__(self) -> None:
        self.previous = [lib.get_num_threads() for lib in _BLAS_LIBS]
        for lib, n in zip(_BLAS_LIBS, self.previous):
            if n is not None and n != self.threads:  # None: the library cannot say
                lib.set_num_threads(self.threads)

    def __exit__(self, *exc: object) -> None:
        for lib, n in zip(_BLAS_LIBS, self.previous):
            if n is not None and n != self.threads:
                lib.set_num_threads(n)


def _blas_threads(threads: int | None) -> contextlib.AbstractContextManager:
    """Limit BLAS to ``threads`` threads inside the block (None: leave it alone)."""
    return contextlib.nullcontext() if threads is None else _BlasThreads(threads)


class Embedder(Protocol):
    """What the tracker needs from an object that computes appearance from an image."""

    def roi_features(self, image: NDArray[np.uint8], boxes: NDArray[np.float64]) -> NDArray:
        """Return (N, C, H, W) RoI feature maps for (N, 4) xyxy boxes in an HxWx3 RGB image."""
        ...


class Tracker:
    """Multi-object tracker with Kalman motion, Mahalanobis gating and appearance.

    Call :meth:`update` once for every frame of a sequence, in order, also
    for frames without detections, and :meth:`reset` before the next
    sequence. Appearance comes, per frame, as embeddings, as RoI feature
    maps (pooled by ``config.pooling``), or as an image together with an
    embedder; with none of them the tracker runs motion + IoU only.

    Args:
        config: settings; the DeepSORT paper's defaults when omitted.
        frame_rate: frames per second of the sequence; ``max_age`` scales
            with it only when ``config.reference_fps`` is set.
        embedder: default embedder used when :meth:`update` gets an image.

    Example:
        >>> tracker = Tracker(TrackerConfig(), frame_rate=30)
        >>> for boxes, scores, embeddings in frames:  # doctest: +SKIP
        ...     out = tracker.update(boxes, scores, embeddings)
        ...     print(out.track_ids, out.boxes)
    """

    def __init__(
        self,
        config: TrackerConfig | None = None,
        *,
        frame_rate: float = 30.0,
        embedder: Embedder | None = None,
    ) -> None:
        self.config = TrackerConfig() if config is None else config
        if not isinstance(self.config, TrackerConfig):
            raise TypeError(f"config must be a TrackerConfig, got {type(self.config).__name__}")
        engine = FilterpyKalman if self.config.kalman == "filterpy" else BatchedKalman
        self._kf = engine(self.config.std_weight_position, self.config.std_weight_velocity)
        self.embedder = embedder
        self.reset(frame_rate)

    # ------------------------------------------------------------------ state

    def reset(self, frame_rate: float | None = None) -> None:
        """Forget every track and start a new sequence (ids restart at 1)."""
        if frame_rate is not None:
            if not (isinstance(frame_rate, (int, float)) and math.isfinite(frame_rate)
                    and frame_rate > 0):
                raise ValueError(f"frame_rate must be a positive number, got {frame_rate!r}")
            self.frame_rate = float(frame_rate)
        self.max_age = self.config.max_age_frames(self.frame_rate)
        self.n_init = self.config.n_init
        self._scores = (ScoreHistory(self.config.score_history)
                        if self.config.min_score_quantile > 0 else None)
        self._tracks = TrackTable(self._kf.cov_shape)
        self._gallery = Gallery(
            self.config.nn_budget, self.config.appearance_memory, self.config.ema_alpha
        )
        self._next_id = 1
        self._frame = 0
        self._uses_appearance: bool | None = None
        self._projection: Any = None

    @property
    def frame_count(self) -> int:
        """Frames passed to :meth:`update` since the last reset."""
        return self._frame

    @property
    def tracks(self) -> list[Track]:
        """Snapshots of the live tracks (tentative ones included), in creation order."""
        t = self._tracks
        boxes = xyah_to_xyxy(t.mean[:, :4])
        return [
            Track(int(t.track_id[i]), TrackState(int(t.state[i])), boxes[i], int(t.hits[i]),
                  int(t.age[i]), int(t.frames_since_update[i]), float(t.score[i]))
            for i in range(len(t))
        ]

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the track table, the appearance memory and the score window."""
        scores = 0 if self._scores is None else self._scores.nbytes
        return self._tracks.nbytes + self._gallery.nbytes + scores

    @property
    def embedding_dim(self) -> int:
        """Dimension of the appearance vectors compared in this sequence (0: none yet)."""
        return 0 if self._gallery.dim is None else int(self._gallery.dim)

    @property
    def gallery_bytes(self) -> int:
        """Bytes held by the appearance memory alone."""
        return self._gallery.nbytes

    # ------------------------------------------------------------------ input

    def update(
        self,
        boxes: ArrayLike,
        scores: ArrayLike,
        embeddings: ArrayLike | None = None,
        *,
        roi_features: ArrayLike | None = None,
        image: NDArray[np.uint8] | None = None,
        embedder: Embedder | None = None,
    ) -> TrackOutput:
        """Advance one frame.

        Args:
            boxes: (N, 4) detections, xyxy pixels, 0-based; N may be 0.
            scores: (N,) detection confidences.
            embeddings: optional (N, D) appearance vectors (normalised here).
            roi_features: optional (N, C, H, W) RoI feature maps, pooled by
                ``config.pooling`` (then projected if ``config.reduce_dim``).
            image: optional HxWx3 uint8 RGB frame; its RoI features are
                computed by ``embedder`` (or the tracker's default embedder).
            embedder: object with ``roi_features(image, boxes)``.

        Returns:
            The confirmed tracks updated this frame, plus those missed for at
            most ``config.output_max_gap`` frames (at their predicted box,
            ``det_index`` -1), sorted by id. Detections ranking below
            ``config.min_score_quantile`` are not tracked.

        Raises:
            InputError: malformed or inconsistent input (NaN/inf, non-positive
                width/height, length mismatch, an embedding dimension that
                changed within the sequence, appearance given on some frames
                but not others). The tracker's state is then exactly as it was.
        """
        with _blas_threads(self.config.blas_threads):
            dets, features = self._prepare(
                boxes, scores, embeddings, roi_features, image, embedder
            )
            return self._step(dets, features)

    def _prepare(self, boxes, scores, embeddings, roi_features, image, embedder):
        """Validate and embed one frame's input without touching the tracker's state."""
        given = [name for name, v in (("embeddings", embeddings), ("roi_features", roi_features),
                                      ("image", image)) if v is not None]
        if len(given) > 1:
            raise InputError(f"pass only one of embeddings, roi_features or image; got {given}")
        dets = Detections(boxes, scores, roi_features=roi_features)
        n = len(dets)
        features = None
        if embeddings is not None:
            # Checked here rather than by Detections: the normalisation reads every value
            # anyway, and a NaN or inf makes the row's sum of squares non-finite.
            vectors = as_2d_float(embeddings, "embeddings", n, check_finite=False)
            features = self._normalize(vectors, "embeddings")
        elif dets.roi_features is not None:
            features = self._pool(dets.roi_features)
        elif image is not None:
            embedder = embedder if embedder is not None else self.embedder
            if embedder is None:
                raise InputError("an image was given but no embedder: pass embedder=... to "
                                 "update() or to Tracker(...)")
            img = np.asarray(image)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise InputError(f"image must be an HxWx3 uint8 RGB array, got shape "
                                 f"{img.shape} dtype {img.dtype}")
            maps = embedder.roi_features(img, dets.boxes)
            features = self._pool(Detections(dets.boxes, dets.scores, roi_features=maps)
                                  .roi_features)
        if n == 0:
            return dets, None
        has = features is not None
        if self._uses_appearance is not None and has != self._uses_appearance:
            raise InputError(
                "appearance was given on earlier frames of this sequence but not on this one"
                if self._uses_appearance else
                "appearance is given on this frame but was missing on earlier frames; "
                "call reset() to start a new sequence"
            )
        if has and self._gallery.dim is not None and features.shape[1] != self._gallery.dim:
            raise InputError(
                f"embedding dimension changed within the sequence: {features.shape[1]} now, "
                f"{self._gallery.dim} before; call reset() to start a new sequence"
            )
        return dets, features

    def _normalize(self, x: NDArray, name: str) -> NDArray[np.float32]:
        try:
            return l2_normalize(x, name)
        except ValueError as e:
            raise InputError(str(e)) from None

    def _pool(self, maps: NDArray[np.float32]) -> NDArray[np.float32]:
        from deeptrack.appearance.pooling import RandomProjection, pool

        cfg = self.config
        if len(maps) == 0:
            return np.zeros((0, 1), np.float32)
        try:
            vectors = pool(maps, cfg.pooling, p=cfg.gem_p, kernel=cfg.maxpool_kernel)
        except ValueError as e:
            raise InputError(f"roi_features: {e}") from None
        if cfg.reduce_dim is not None:
            d = vectors.shape[1]
            # The projection hides a change of RoI channels from the dimension check below.
            if self._gallery.dim is not None and self._projection is not None \
                    and self._projection.in_dim != d:
                raise InputError(
                    f"roi_features pool to {d} values now, {self._projection.in_dim} before "
                    f"(the RoI channels changed within the sequence); call reset() to start a "
                    f"new sequence")
            proj = self._projection
            if proj is None or proj.in_dim != d:
                proj = RandomProjection(d, cfg.reduce_dim, cfg.reduce_seed)
            vectors = proj(vectors)
            self._projection = proj  # a pure function of (d, reduce_dim, seed)
        # A map that pools to the zero vector (e.g. all-zero ReLU activations) carries no
        # appearance evidence: it stays zero, at cosine distance 1 from everything, so only
        # motion and IoU can match it. (A zero embedding passed by the caller is an error.)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    # ------------------------------------------------------------------ step

    def _step(self, dets: Detections, features: NDArray[np.float32] | None) -> TrackOutput:
        t = self._tracks
        self._frame += 1
        if len(dets) and self._uses_appearance is None:
            self._uses_appearance = features is not None
        dets, features, index = self._filter_scores(dets, features)
        n = len(dets)

        ints = t.ints
        if len(t):
            t.mean, t.cov = self._kf.predict(t.mean, t.cov)
            ints[:, _AGE:_FSU + 1] += 1  # age and frames_since_update
            ints[:, _DET] = -1

        det_xyah = xyxy_to_xyah(dets.boxes)
        ti, di = self._associate(dets, det_xyah, features)

        # Update matched tracks.
        if len(ti):
            mean, cov = self._kf.update(t.mean[ti], t.cov[ti], det_xyah[di])
            t.set_rows(ti, mean, cov, dets.scores[di])
            ints[ti, _HITS] += 1
            ints[ti, _FSU] = 0
            ints[ti, _DET] = di if index is None else index[di]
            if features is not None:
                self._gallery.add(ints[ti, _SLOT], features[di])
            # Confirmation happens on a matched frame (never at birth), as in DeepSORT;
            # ids are handed out now, in creation (row) order.
            rows = np.sort(ti[(ints[ti, _STATE] == _TENTATIVE) & (ints[ti, _HITS] >= self.n_init)])
            if len(rows):
                ints[rows, _STATE] = _CONFIRMED
                ints[rows, _ID] = np.arange(self._next_id, self._next_id + len(rows))
                self._next_id += len(rows)

        # Lifecycle of the unmatched: a tentative track dies at its first miss (a matched
        # track has frames_since_update 0, so neither test can delete it).
        state, fsu = ints[:, _STATE], ints[:, _FSU]
        delete = (fsu > 0) & ((state == _TENTATIVE) | (fsu > self.max_age))

        # New tentative tracks from unmatched detections.
        if len(ti) < n:
            new = np.ones(n, bool)
            new[di] = False
            nd = np.flatnonzero(new)
            k = len(nd)
            mean, cov = self._kf.initiate(det_xyah[nd])
            if features is not None:
                slots = self._gallery.allocate(k, features.shape[1])
                self._gallery.add(slots, features[nd])
            else:
                slots = np.full(k, -1, np.int64)
            t.append(
                mean=mean, cov=cov, state=_TENTATIVE, track_id=0, hits=1, age=1,
                frames_since_update=0, score=dets.scores[nd], slot=slots,
                det_index=nd if index is None else index[nd],
            )
            delete = np.concatenate([delete, np.zeros(k, bool)])
            ints = t.ints  # append() replaced the array

        if delete.any():
            freed = ints[delete, _SLOT]
            self._gallery.release(freed[freed >= 0])
            t.keep(~delete)

        return self._output()

    def _filter_scores(self, dets: Detections, features: NDArray | None):
        """Drop the detections ranking below ``min_score_quantile``; return their input rows.

        Returns ``(dets, features, index)``, ``index`` mapping each kept row
        to its row in the input (None when every detection is kept).
        """
        if self._scores is None:
            return dets, features, None
        threshold = self._scores.threshold(self.config.min_score_quantile, dets.scores)
        self._scores.add(dets.scores)
        keep = dets.scores >= threshold
        if keep.all():
            return dets, features, None
        index = np.flatnonzero(keep)
        kept = Detections(dets.boxes[index], dets.scores[index])
        return kept, None if features is None else features[index], index

    def _associate(self, dets: Detections, det_xyah: NDArray, features: NDArray | None):
        """Return the matched (track rows, detection indices) of this frame.

        Every stage works on the sparse list of admissible (track, detection)
        pairs, not on (T, N) matrices: the gate admits a few detections per
        track, and costs and assignments are computed for those only (the
        result is the dense formulation's; tests compare the two).
        """
        cfg = self.config
        t = self._tracks
        n = len(dets)
        if len(t) == 0 or n == 0:
            return _NO_MATCH

        ints = t.ints
        state, fsu = ints[:, _STATE], ints[:, _FSU]
        pred_boxes = xyah_to_xyxy(t.mean[:, :4])
        # A track missed more than max_age times is deleted this frame whatever happens:
        # DeepSORT's cascade stops at max_age, so it cannot be matched either.
        confirmed = np.flatnonzero((state == _CONFIRMED) & (fsu <= self.max_age))

        # Stage 1: matching cascade over confirmed tracks, motion-gated.
        ti, di = _NO_MATCH
        if len(confirmed):
            proj_mean, proj_cov = self._kf.project(t.mean[confirmed], t.cov[confirmed])
            rows, cols = gate_pairs(proj_mean, proj_cov, det_xyah, cfg.gating_threshold)
            if features is not None:
                slots = ints[confirmed, _SLOT]

                def cost_of(r, c):
                    return self._gallery.pair_cost(slots[r], c, features)

                max_cost = cfg.max_cosine_distance
            else:  # motion only: IoU takes the place of appearance in the cascade
                boxes = pred_boxes[confirmed]

                def cost_of(r, c):
                    return 1.0 - iou_pairs(boxes[r], dets.boxes[c])

                max_cost = cfg.max_iou_distance
            r, di = cascade_lazy(rows, cols, cost_of, fsu[confirmed], n, max_cost)
            ti = confirmed[r]

        # Stage 2: IoU between the leftover detections and the unmatched tracks seen on
        # the previous frame: tentative ones (which are always) and confirmed ones.
        candidate = fsu == 1
        candidate[ti] = False
        left = np.ones(n, bool)
        left[di] = False
        if candidate.any() and left.any():
            cand, rest = np.flatnonzero(candidate), np.flatnonzero(left)
            iou = iou_cost(pred_boxes[cand], dets.boxes[rest])
            r, c = nonzero_2d(iou <= cfg.max_iou_distance)
            r, c = match_pairs(r, c, iou[r, c], len(cand), len(rest), cfg.max_iou_distance)
            ti, di = np.concatenate([ti, cand[r]]), np.concatenate([di, rest[c]])
        return ti, di

    def _output(self) -> TrackOutput:
        t = self._tracks
        show = (t.state == _CONFIRMED) & (t.frames_since_update <= self.config.output_max_gap)
        rows = np.flatnonzero(show)
        if len(rows) == 0:
            return TrackOutput.empty()
        # Rows are in creation order, and every track is confirmed exactly n_init frames
        # after its creation (a tentative track dies at its first miss), ids being given
        # in row order: confirmed rows are already sorted by id (a test checks this).
        ints = t.ints[rows]
        return TrackOutput(
            ints[:, _ID], xyah_to_xyxy(t.mean[rows, :4]), t.score[rows], ints[:, _DET],
        )
