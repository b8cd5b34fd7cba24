"""The tiny sequences and the in-process runner shared by the command-line tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from deeptrack.cli import main


def make_sequence(root: Path, name: str = "SEQ-01", frames: int = 12, seed: int = 0) -> Path:
    """A tiny MOT15-layout sequence: two people walking, 96x64 frames, det and gt."""
    rng = np.random.default_rng(seed)
    seq = root / name
    (seq / "img1").mkdir(parents=True)
    (seq / "det").mkdir()
    (seq / "gt").mkdir()
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={frames}\n"
        "imWidth=96\nimHeight=64\nimExt=.jpg\n")
    det, gt = [], []
    for f in range(1, frames + 1):
        img = np.full((64, 96, 3), 40, np.uint8)
        for pid, (x, colour) in enumerate(((5 + 2 * f, 200), (70 - 2 * f, 90))):
            img[20:50, x:x + 12] = colour
            gt.append(f"{f},{pid + 1},{x + 1},21,12,30,1,-1,-1,-1")
            det.append(f"{f},-1,{x + 1 + rng.normal(0, 0.3):.2f},21,12,30,{0.9:.2f},-1,-1,-1")
        Image.fromarray(img).save(seq / "img1" / f"{f:06d}.jpg")
    (seq / "det" / "det.txt").write_text("\n".join(det) + "\n")
    (seq / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    return seq


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err
