"""Synthetic MOTChallenge sequences and a stand-in embedder for the sweep tests.

Worker processes import this module (the process pool through the parent's
``sys.path``, Ray's workers through ``PYTHONPATH``), so everything a task
needs lives at module level here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deeptrack.synthetic import make_scene

TESTS = Path(__file__).resolve().parent


def write_scene(root: Path, name: str, *, n_objects: int = 6, n_frames: int = 50,
                seed: int = 0, images: bool = False) -> Path:
    """Write a seeded synthetic scene as a MOT15-layout sequence folder; return it.

    ``det/det.txt`` holds every detection, ``det/det_sparse.txt`` every other
    one (a second detection file); ``gt/gt.txt`` the true boxes. With
    ``images``, ``img1/`` gets tiny grey frames for the stand-in embedder.
    """
    scene = make_scene(n_objects, n_frames, seed=seed, embedding_dim=8, p_miss=0.1,
                       p_occlusion=0.02, fp_per_frame=1.0, speed=8.0)
    seq = root / name
    (seq / "det").mkdir(parents=True)
    (seq / "gt").mkdir()
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={n_frames}\n"
        f"imWidth={scene.width}\nimHeight={scene.height}\nimExt=.jpg\n")
    det, sparse, gt = [], [], []
    for f, frame in enumerate(scene.frames, start=1):
        for k, (box, score) in enumerate(zip(frame.boxes, frame.scores, strict=True)):
            x1, y1, x2, y2 = box
            line = f"{f},-1,{x1 + 1:.3f},{y1 + 1:.3f},{x2 - x1:.3f},{y2 - y1:.3f},{score:.4f},-1,-1,-1"
            det.append(line)
            if k % 2 == 0:
                sparse.append(line)
        for box, gid in zip(frame.gt_boxes, frame.gt_ids, strict=True):
            x1, y1, x2, y2 = box
            gt.append(f"{f},{gid + 1},{x1 + 1:.3f},{y1 + 1:.3f},{x2 - x1:.3f},{y2 - y1:.3f},"
                      "1,-1,-1,-1")
    (seq / "det" / "det.txt").write_text("\n".join(det) + "\n")
    (seq / "det" / "det_sparse.txt").write_text("\n".join(sparse) + "\n")
    (seq / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    if images:
        (seq / "img1").mkdir()
        grey = Image.fromarray(np.full((8, 8, 3), 90, np.uint8))
        for f in range(1, n_frames + 1):
            grey.save(seq / "img1" / f"{f:06d}.jpg")
    return seq


class BoxEmbedder:
    """A stand-in for RoIEmbedder: (N, 8, 1, 1) maps from each box's geometry, no backbone.

    Deterministic, cheap and different for differently placed boxes, so the
    tracker's appearance cost depends on the maps and a sweep's feature tasks
    can be tested without weights.
    """

    out_channels = 8
    roi_size = 1
    batch_size = 8

    def __init__(self, config: Any = None) -> None:
        self.key = {"stand_in": "BoxEmbedder", "version": 1}

    def roi_features(self, image, boxes):
        return self.roi_features_batch([image], [boxes])[0]

    def roi_features_batch(self, images, boxes_list):
        out = []
        for boxes in boxes_list:
            b = np.asarray(boxes, np.float64)
            cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
            k = np.arange(1, 5)
            maps = np.concatenate([np.abs(np.sin(np.outer(cx, k) / 211.0)),
                                   np.abs(np.cos(np.outer(cy, k) / 127.0))], axis=1)
            out.append(maps.astype(np.float32).reshape(len(b), 8, 1, 1) + 0.01)
        return out


def box_embedder(config: Any) -> BoxEmbedder:
    """The embedder factory a sweep spec takes."""
    return BoxEmbedder(config)


def fail_on_purpose(message: str) -> None:
    """A task that raises."""
    raise RuntimeError(message)


def die_once(marker: str, value: int) -> int:
    """Kill this worker process the first time (``marker`` absent), return ``value`` after."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os._exit(17)
    return value


def always_die() -> None:
    """Kill this worker process, every time."""
    os._exit(17)


def double(x: int) -> int:
    return 2 * x


def add(x: int, y: int) -> int:
    return x + y


def appearance_spec(sequences, cache_dir: str | None):
    """The sweep the tests run: the DeepSORT preset on the stand-in maps, and motion only.

    2 detection files x 3 pooling modes (``none`` is motion only) x 2 values
    of ``max_age`` per sequence; one feature task per sequence and detection file.
    """
    import dataclasses

    from deeptrack.config import load_yaml
    from deeptrack.sweeps import product

    base = load_yaml(TESTS.parent / "configs" / "deepsort.yaml")
    base = dataclasses.replace(base, appearance=dataclasses.replace(
        base.appearance, cache_dir=cache_dir, weights=None))
    spec = product(base, sequences, det_files=["det.txt", "det_sparse.txt"],
                   pooling=["none", "avg", "max"], grid={"tracker.max_age": [5, 30]})
    return dataclasses.replace(spec, embedder=box_embedder)


def cluster_check(address: str, out: str, sequences: list[str]) -> None:
    """Run the test sweep on the cluster at ``address``; pickle its result into ``out``.

    Run in a process of its own (``tests/test_sweeps.py``), so that this driver's
    Ray settings are its own. No cache folder: the maps cross nodes in the object store.
    """
    import pickle

    from deeptrack.sweeps import RayBackend, run_sweep

    backend = RayBackend(address=address)
    try:
        result = run_sweep(appearance_spec(sequences, None), backend)
    finally:
        backend.close()
    with open(out, "wb") as f:
        pickle.dump({"runs": result.runs, "failures": result.failures,
                     "transport": result.transport, "cpus": backend.workers,
                     "nodes": sorted({o.node.rsplit("Ray node ", 1)[-1]
                                      for o in result.outcomes})}, f)
