"""The DeepSORT-style tracker: predict -> associate -> update -> lifecycle.

Written from Wojke, Bewley & Paulus, "Simple Online and Realtime Tracking
with a Deep Association Metric" (ICIP 2017), with the SORT-like motion-only
mode of Bewley et al. 2016 when no appearance is given, and the EMA
appearance memory of StrongSORT (Du et al. 2023) as an option.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from deeptrack.appearance.adapt import OnlineAdapter, check_dimension
from deeptrack.appearance.extract import Embedder
from deeptrack.appearance.head import EmbeddingHead
from deeptrack.appearance.pooling import l2_normalize
from deeptrack.association.assign import NO_PAIRS, Pairs
from deeptrack.association.deepsort import DeepSortAssociation
from deeptrack.association.fused import FusedAssociation
from deeptrack.association.gallery import Gallery
from deeptrack.association.strategy import Association, DetectionView, TrackView
from deeptrack.boxes import MIN_SIZE, xyah_to_xyxy, xyxy_to_xyah
from deeptrack.config import TrackerConfig
from deeptrack.errors import InputError
from deeptrack.motion.kalman import BatchedKalman, FilterpyKalman
from deeptrack.tracking.blas import blas_thread_limit
from deeptrack.tracking.scores import ScoreHistory
from deeptrack.tracking.track import Track, TrackState, TrackTable
from deeptrack.types import (
    AdaptationMode,
    AppearanceEvidence,
    AssociationMode,
    Detections,
    KalmanEngine,
    TrackOutput,
    as_2d_float,
)

logger = logging.getLogger(__name__)


def _unit_embeddings(embeddings: ArrayLike, n: int) -> NDArray[np.float32]:
    """Validate a caller's (n, D) embeddings and scale their rows to unit length.

    A zero row is refused here, at the input: a vector the caller computed
    should have a direction (``l2_normalize`` itself keeps zero rows zero,
    which is right for pooled maps with no activation).
    """
    # NaN/inf is checked here rather than by as_2d_float: a NaN or inf makes the row's sum
    # of squares non-finite, and the sum of squares is needed anyway.
    x = as_2d_float(embeddings, "embeddings", n, check_finite=False)
    sq = np.einsum("nd,nd->n", x, x)  # no overflow warning from einsum; inf is caught below
    if not ((sq > 0).all() and np.isfinite(sq).all()):
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise InputError(f"embeddings[{int(np.flatnonzero(bad)[0])}] contains NaN or inf")
        zero = ~x.any(axis=1)
        if zero.any():
            raise InputError(f"embeddings[{int(np.flatnonzero(zero)[0])}] is the zero vector; "
                             f"it has no direction to compare")
        # Otherwise the sum of squares only under- or overflowed; l2_normalize rescales.
    return l2_normalize(x)


def _association(config: TrackerConfig) -> Association:
    """Return the association strategy ``config.association`` names."""
    if config.association is AssociationMode.DEEPSORT:
        return DeepSortAssociation(config.max_cosine_distance, config.max_iou_distance,
                                   config.gating_threshold)
    if config.association is AssociationMode.FUSED:
        return FusedAssociation(
            config.fused_max_cost, config.iou_weight, config.max_iou_distance,
            config.gating_threshold, config.fused_levels, config.lost_appearance,
            config.appearance_evidence is AppearanceEvidence.CALIBRATED)
    raise ValueError(f"no association strategy for {config.association!r}")  # pragma: no cover


class Tracker:
    """Multi-object tracker with Kalman motion, Mahalanobis gating and appearance.

    Call :meth:`update` once for every frame of a sequence, in order, also
    for frames without detections, and :meth:`reset` before the next
    sequence. The tracker compares vectors; what turns RoI feature maps or
    images into vectors is handed in, as deep_sort hands in its metric.
    Appearance comes, per frame, in one of three ways:

    - ``embeddings`` (N, D): compared as given (normalised);
    - ``roi_features`` (N, C, H, W): made vectors by ``head``;
    - ``image`` (HxWx3 uint8 RGB): maps computed by ``embedder``, then ``head``.

    With none of them the tracker runs on motion + IoU only.

    Args:
        config: settings; the DeepSORT paper's defaults when omitted.
        frame_rate: frames per second of the sequence; ``max_age`` scales
            with it only when ``config.reference_fps`` is set.
        head: turns RoI feature maps into vectors (needed for
            ``roi_features`` and ``image``).
        embedder: computes RoI feature maps from an image (needed for ``image``).

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
        head: EmbeddingHead | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.config = TrackerConfig() if config is None else config
        if not isinstance(self.config, TrackerConfig):
            raise TypeError(f"config must be a TrackerConfig, got {type(self.config).__name__}")
        if head is not None and not isinstance(head, EmbeddingHead):
            raise TypeError(f"head must be an EmbeddingHead, got {type(head).__name__}")
        engine = (FilterpyKalman if self.config.kalman is KalmanEngine.FILTERPY
                  else BatchedKalman)
        self._kf = engine(self.config.std_weight_position, self.config.std_weight_velocity)
        self.head = head
        self.embedder = embedder
        self._association = _association(self.config)
        self._blas = blas_thread_limit(self.config.blas_threads)
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
        self._association.reset()
        self._adapter = OnlineAdapter(self.config.adaptation, prior=self.config.adaptation_prior)
        # Each track's last raw vector (by memory slot): within-track steps for centre_scale, whiten.
        self._raw_last: dict[int, NDArray[np.float32]] = {}
        self._next_id = 1
        self._frame = 0
        self._uses_appearance: bool | None = None
        self._pooled_dim: int | None = None  # of this sequence's maps, before any projection

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
        steps = sum(v.nbytes for v in self._raw_last.values())
        return self._tracks.nbytes + self._gallery.nbytes + scores + steps

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
    ) -> TrackOutput:
        """Advance one frame.

        Args:
            boxes: (N, 4) detections, xyxy pixels, 0-based; N may be 0.
            scores: (N,) detection confidences.
            embeddings: optional (N, D) appearance vectors (normalised here).
            roi_features: optional (N, C, H, W) RoI feature maps, made vectors
                by the tracker's ``head``.
            image: optional HxWx3 uint8 RGB frame; its RoI maps come from the
                tracker's ``embedder``, then its ``head``.

        Returns:
            The confirmed tracks updated this frame, plus those missed for at
            most ``config.output_max_gap`` frames (at their predicted box,
            ``det_index`` -1), sorted by id. Detections ranking below
            ``config.min_score_quantile`` are not tracked.

        Raises:
            InputError: malformed or inconsistent input (NaN/inf, non-positive
                width/height, length mismatch, an embedding dimension that
                changed within the sequence, appearance given on some frames
                but not others, maps or an image without a head or embedder).
                The tracker's state is then exactly as it was.
        """
        with self._blas:
            dets, features, pooled_dim = self._prepare(
                boxes, scores, embeddings, roi_features, image)
            if self._pooled_dim is None:
                self._pooled_dim = pooled_dim
            return self._step(dets, features)

    def _prepare(
        self, boxes: ArrayLike, scores: ArrayLike, embeddings: ArrayLike | None,
        roi_features: ArrayLike | None, image: NDArray[np.uint8] | None,
    ) -> tuple[Detections, NDArray[np.float32] | None, int | None]:
        """Validate and embed one frame's input without touching the tracker's state.

        Returns the detections, their unit vectors (or None) and the pooled
        dimension of the maps they came from (None without maps).
        """
        given = [name for name, v in (("embeddings", embeddings), ("roi_features", roi_features),
                                      ("image", image)) if v is not None]
        if len(given) > 1:
            raise InputError(f"pass only one of embeddings, roi_features or image; got {given}")
        dets = Detections(boxes, scores, roi_features=roi_features)
        n = len(dets)
        features, pooled_dim = None, None
        if embeddings is not None:
            features = _unit_embeddings(embeddings, n)
        elif roi_features is not None:
            features, pooled_dim = self._embed_maps(dets.roi_features, "roi_features")
        elif image is not None:
            features, pooled_dim = self._embed_maps(self._image_maps(image, dets.boxes), "image")
        if n == 0:
            return dets, None, None
        self._check_appearance(features)
        return dets, features, pooled_dim

    def _image_maps(self, image: NDArray[np.uint8], boxes: NDArray[np.float64]) -> NDArray:
        """Return the embedder's (N, C, H, W) RoI maps of ``boxes`` in ``image``."""
        if self.embedder is None:
            raise InputError("an image was given but the tracker has no embedder: "
                             "Tracker(config, embedder=RoIEmbedder(...), head=EmbeddingHead(...))")
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise InputError(f"image must be an HxWx3 uint8 RGB array, got shape "
                             f"{img.shape} dtype {img.dtype}")
        maps = np.asarray(self.embedder.roi_features(img, boxes))
        if maps.ndim != 4 or len(maps) != len(boxes):
            raise InputError(f"the embedder returned maps of shape {maps.shape} for "
                             f"{len(boxes)} boxes; expected ({len(boxes)}, C, H, W)")
        return maps

    def _embed_maps(self, maps: NDArray, source: str) -> tuple[NDArray[np.float32], int | None]:
        """Return the head's unit vectors of (N, C, H, W) ``maps`` and their pooled dimension."""
        if self.head is None:
            raise InputError(f"{source} was given but the tracker has no head to turn RoI maps "
                             f"into vectors: Tracker(config, head=EmbeddingHead(HeadConfig(...)))")
        if len(maps) == 0:
            return np.zeros((0, 1), np.float32), None
        try:
            pooled = self.head.pooled_dim(*maps.shape[1:])
        except ValueError as e:  # ConfigError / InputError: maps of no usable shape
            raise InputError(f"{source}: {e}") from None
        # A projection hides a change of RoI channels from the dimension check.
        if self._pooled_dim is not None and self._gallery.dim is not None \
                and pooled != self._pooled_dim:
            raise InputError(
                f"{source} pool to {pooled} values now, {self._pooled_dim} before (the RoI "
                f"channels changed within the sequence); call reset() to start a new sequence")
        try:
            vectors = self.head(maps)
        except ValueError as e:
            raise InputError(f"{source}: {e}") from None
        # A map that pools to the zero vector (e.g. all-zero ReLU activations) carries no
        # appearance evidence: it stays zero, at cosine distance 1 from everything, so only
        # motion and IoU can match it. (A zero embedding passed by the caller is an error.)
        return vectors, pooled

    def _check_appearance(self, features: NDArray[np.float32] | None) -> None:
        """Refuse appearance that comes and goes, or changes dimension, within a sequence."""
        has = features is not None
        if self._uses_appearance is not None and has != self._uses_appearance:
            raise InputError(
                "appearance was given on earlier frames of this sequence but not on this one"
                if self._uses_appearance else
                "appearance is given on this frame but was missing on earlier frames; "
                "call reset() to start a new sequence"
            )
        if has:
            check_dimension(self.config.adaptation, features.shape[1])
        if has and self._gallery.dim is not None and features.shape[1] != self._gallery.dim:
            raise InputError(
                f"embedding dimension changed within the sequence: {features.shape[1]} now, "
                f"{self._gallery.dim} before; call reset() to start a new sequence"
            )

    # ------------------------------------------------------------------ step

    def _step(self, dets: Detections, features: NDArray[np.float32] | None) -> TrackOutput:
        """Advance the tracks by one frame of validated input (DeepSORT's update loop)."""
        self._frame += 1
        if len(dets) and self._uses_appearance is None:
            self._uses_appearance = features is not None
        dets, features, index, low = self._filter_scores(dets, features)
        raw = features
        if features is not None:
            features = self._adapter(features)
        frame = DetectionView(dets.boxes, xyxy_to_xyah(dets.boxes), dets.scores, features, low)
        self._predict()
        ti, di = self._associate(frame)
        self._update_matched(ti, di, frame, index)
        doomed = self._doomed()
        born, new_slots = self._birth(ti, di, frame, index)
        if raw is not None and self.config.adaptation in (AdaptationMode.CENTRE_SCALE,
                                                          AdaptationMode.WHITEN):
            self._observe_steps(ti, di, born, new_slots, raw)
        self._delete(doomed)
        self._gallery.trim()  # storage follows the recent number of live tracks
        return self._output()

    def _predict(self) -> None:
        """Kalman predict every track; one more frame of age and of misses for each."""
        t = self._tracks
        if len(t):
            t.set_motion(*self._kf.predict(t.mean, t.cov))
            t.start_frame()

    def _associate(self, frame: DetectionView) -> Pairs:
        """Return the matched (track rows, detection indices) chosen by the strategy."""
        t = self._tracks
        if len(t) == 0 or len(frame) == 0:
            return NO_PAIRS
        tracks = TrackView(
            confirmed=t.confirmed, frames_since_update=t.frames_since_update,
            boxes=xyah_to_xyxy(t.mean[:, :4]), slots=t.slot, memory=self._gallery,
            project=lambda rows: self._kf.project(t.mean[rows], t.cov[rows]),
            max_age=self.max_age,
        )
        return self._association.associate(tracks, frame)

    def _update_matched(self, ti: NDArray[np.int64], di: NDArray[np.int64],
                        frame: DetectionView, index: NDArray[np.int64] | None) -> None:
        """Kalman update the matched tracks, store their appearance, confirm the ready ones."""
        if len(ti) == 0:
            return
        t = self._tracks
        mean, cov = self._kf.update(t.mean[ti], t.cov[ti], frame.xyah[di])
        t.record_matches(ti, mean, cov, frame.scores[di], di if index is None else index[di])
        if frame.features is not None:
            # A low-score box (ByteTrack's stage) is often occluded: it moves the track
            # but its appearance is not remembered.
            keep = slice(None) if frame.low is None else ~frame.low[di]
            self._gallery.add(t.slot[ti[keep]], frame.features[di[keep]])
        # Confirmation happens on a matched frame (never at birth), as in DeepSORT.
        self._next_id = t.confirm(ti, self.n_init, self._next_id)

    def _observe_steps(self, ti: NDArray[np.int64], di: NDArray[np.int64],
                       born: NDArray[np.int64], new_slots: NDArray[np.int64],
                       raw: NDArray[np.float32]) -> None:
        """Give the adapter each matched track's step from its last raw vector; remember these."""
        slots = self._tracks.slot
        pairs = [(self._raw_last[s], raw[d]) for s, d in zip(slots[ti].tolist(), di.tolist())
                 if s in self._raw_last]
        if pairs:
            self._adapter.observe(np.stack([p[0] for p in pairs]),
                                  np.stack([p[1] for p in pairs]))
        for s, d in zip(slots[ti].tolist(), di.tolist()):
            self._raw_last[s] = raw[d]
        for s, d in zip(new_slots.tolist(), born.tolist()):  # a reused slot is overwritten
            self._raw_last[s] = raw[d]

    def _doomed(self) -> NDArray[np.bool_]:
        """Return which tracks die this frame: a missed tentative one, or one missed too long.

        A matched track has frames_since_update 0, so neither rule can delete it.
        """
        t = self._tracks
        fsu = t.frames_since_update
        return (fsu > 0) & (t.tentative | (fsu > self.max_age))

    def _birth(self, ti: NDArray[np.int64], di: NDArray[np.int64], frame: DetectionView,
               index: NDArray[np.int64] | None) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Start a tentative track from every high-score detection left unmatched.

        Returns the detections that started one and the tracks' memory slots.
        """
        n = len(frame)
        none = np.zeros(0, np.int64)
        if len(ti) == n:
            return none, none
        new = np.ones(n, bool) if frame.low is None else ~frame.low
        new[di] = False
        nd = np.flatnonzero(new)
        if len(nd) == 0:
            return none, none
        mean, cov = self._kf.initiate(frame.xyah[nd])
        if frame.features is not None:
            slots = self._gallery.allocate(len(nd), frame.features.shape[1])
            self._gallery.add(slots, frame.features[nd])
        else:
            slots = np.full(len(nd), -1, np.int64)
        self._tracks.append(mean, cov, frame.scores[nd], slots,
                            nd if index is None else index[nd])
        return nd, slots

    def _delete(self, doomed: NDArray[np.bool_]) -> None:
        """Drop the ``doomed`` rows (tracks born this frame, past its end, survive)."""
        if not doomed.any():
            return
        t = self._tracks
        doomed = np.concatenate([doomed, np.zeros(len(t) - len(doomed), bool)])
        freed = t.slot[doomed]
        self._gallery.release(freed[freed >= 0])
        t.keep(~doomed)

    def _filter_scores(self, dets: Detections, features: NDArray | None):
        """Drop (or mark low) the detections ranking below ``min_score_quantile``.

        Returns ``(dets, features, index, low)``: ``index`` maps each kept row
        to its row in the input (None when every detection is kept); ``low``
        marks the rows below the cut when ``low_score_stage`` keeps them
        (None otherwise).
        """
        if self._scores is None:
            return dets, features, None, None
        threshold = self._scores.threshold(self.config.min_score_quantile, dets.scores)
        self._scores.add(dets.scores)
        keep = dets.scores >= threshold
        if self.config.low_score_stage:
            return dets, features, None, ~keep
        if keep.all():
            return dets, features, None, None
        index = np.flatnonzero(keep)
        kept = Detections(dets.boxes[index], dets.scores[index])
        return kept, None if features is None else features[index], index, None

    def _output(self) -> TrackOutput:
        """The confirmed tracks matched this frame or missed at most ``output_max_gap`` frames."""
        t = self._tracks
        show = t.confirmed & (t.frames_since_update <= self.config.output_max_gap)
        # A prediction can shrink through zero (a box whose height or aspect was falling
        # fast when its track was lost): such a box is no box, so it is not output.
        show &= (t.mean[:, 2] > 0) & (t.mean[:, 3] > 0)
        rows = np.flatnonzero(show)
        if len(rows) == 0:
            return TrackOutput.empty()
        # Rows are in creation order, and every track is confirmed the same number of frames
        # after its creation (max(n_init, 2): a tentative track dies at its first miss and is
        # confirmed on a match), ids being given in row order: confirmed rows are already
        # sorted by id (a test checks this).
        boxes = xyah_to_xyxy(t.mean[rows, :4])
        # The xyah round trip can leave a box of the smallest accepted size a rounding error
        # below it (fuzzing found 1e-8 px in, 9.99e-9 out): widen such sides about the centre
        # to 1.5 MIN_SIZE, a margin over float64 spacing (1.9e-9 at MAX_COORD).
        for lo, hi in ((0, 2), (1, 3)):
            thin = boxes[:, hi] - boxes[:, lo] < MIN_SIZE
            if thin.any():
                mid = 0.5 * (boxes[thin, lo] + boxes[thin, hi])
                boxes[thin, lo] = mid - 0.75 * MIN_SIZE
                boxes[thin, hi] = mid + 0.75 * MIN_SIZE
        return TrackOutput(t.track_id[rows], boxes, t.score[rows], t.det_index[rows])
