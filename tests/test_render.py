"""deeptrack render and eval --plot (issue 15): videos that decode, boxes where the file says,
the evaluation's own marks at the right frames, identity timelines, and the CLI's errors.

Results are made from ground truth and edited (a planted identity switch, a gap), so what
must be drawn is known. The real-data tests draw a few frames of MOT15 ADL-Rundle-6 at a
quarter of its size; the rest use the tiny sequences of ``cli_support``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from cli_support import make_sequence, run
from PIL import Image

from deeptrack.eval import evaluate_sequence
from deeptrack.io import TrackResults, load_sequence, read_results
from deeptrack.render import (
    RENDER_EXTRA,
    Overlay,
    draw_frames,
    evaluation_events,
    id_colours,
)
from deeptrack.render.overlay import SWITCH
from deeptrack.render.timeline import ABSENT, MISSED, timeline_rows

TESTS = Path(__file__).resolve().parent
ADL = ("MOT15", "train", "ADL-Rundle-6")  # 1920x1080, 525 frames, MOT15 layout
QUARTER = (480, 270)
#: The object whose results change track id at SWITCH_FRAME, and the id they take.
SWITCH_OBJECT, SWITCH_FRAME, NEW_ID = 1, 8, 999


@pytest.fixture()
def adl(data_root) -> Path:
    path = data_root.joinpath(*ADL)
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


def gt_rows(seq: Path, last_frame: int) -> np.ndarray:
    """(N, 6) frame, id, x, y, w, h of the ground truth's scored rows up to ``last_frame``."""
    a = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
    return a[(a[:, 0] <= last_frame) & (a[:, 6] != 0), :6]


def write_results(folder: Path, name: str, rows: np.ndarray) -> Path:
    """Write (frame, id, x, y, w, h) rows as ``folder/<name>.txt``, MOTChallenge style."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.txt"
    path.write_text("".join(f"{int(f)},{int(i)},{x:g},{y:g},{w:g},{h:g},1,-1,-1,-1\n"
                            for f, i, x, y, w, h in rows.tolist()))
    return path


def planted(seq: Path, folder: Path, last_frame: int = 12) -> Path:
    """Ground truth as results, except that SWITCH_OBJECT becomes NEW_ID from SWITCH_FRAME."""
    rows = gt_rows(seq, last_frame)
    rows[(rows[:, 1] == SWITCH_OBJECT) & (rows[:, 0] >= SWITCH_FRAME), 1] = NEW_ID
    return write_results(folder, seq.name, rows)


def left_edge(box_xyxy: np.ndarray, scale: float) -> tuple[slice, slice]:
    """Rows and columns of a scaled box's left edge and the pixel outside it."""
    x1, y1, _, y2 = (round(v * scale) for v in box_xyxy.tolist())
    return slice(y1 + 4, y2 - 4), slice(x1 - 1, x1 + 1)


# ------------------------------------------------------------------ video on real frames


def test_mp4_decodes_back_with_the_frames_and_size_asked_for(capsys, adl, tmp_path):
    av = pytest.importorskip("av")
    out = tmp_path / "adl.mp4"
    write_results(tmp_path / "res", adl.name, gt_rows(adl, 20))
    code, stdout, err = run(capsys, "render", adl, "--results", tmp_path / "res", "--out", out,
                            "--frames", "3:8", "--scale", "0.25", "--quiet")
    assert code == 0, err
    assert "6 frames (3-8, 480x270)" in stdout
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6
    assert {f.shape for f in frames} == {(270, 480, 3)}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_a_box_is_drawn_where_and_when_the_result_file_says(capsys, adl, tmp_path):
    av = pytest.importorskip("av")
    # one box, id 7, in frame 5 only: file tlwh (401, 301, 200, 300) is xyxy (400, 300, 600, 600)
    path = write_results(tmp_path / "res", adl.name, np.array([[5, 7, 401, 301, 200, 300]]))
    box = read_results(path).boxes[0]
    colour = id_colours([7])[0]
    rows, cols = slice(round(300 / 4) + 3, round(600 / 4) - 3), round(400 / 4)

    # lossless, as drawn: the left edge is exactly the id's colour, in frame 5 only
    seq = load_sequence(adl, det_file=None)
    drawn = {f: np.asarray(im) for f, im in
             draw_frames(seq, Overlay(read_results(path), trail=0), range(4, 7), QUARTER)}
    assert (drawn[5][rows, cols] == colour).all()
    assert not (drawn[4][rows, cols] == colour).all(axis=-1).any()
    assert not (drawn[6][rows, cols] == colour).all(axis=-1).any()
    assert np.array_equal(box, [400, 300, 600, 600])

    # through H.264 and back: the edge is near the colour in the 3rd frame of 4:6 only
    out = tmp_path / "one.mp4"
    code, _, err = run(capsys, "render", adl, "--results", path, "--out", out, "--frames", "3:6",
                       "--scale", "0.25", "--quiet")
    assert code == 0, err
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    off = [np.abs(f[rows, cols] - colour).mean() for f in frames]
    assert off[2] < 30 and min(off[:2] + off[3:]) > 2 * off[2], off


def test_the_overlay_marks_a_planted_switch_at_its_frame(capsys, adl, tmp_path):
    path = planted(adl, tmp_path / "res")
    seq = load_sequence(adl, det_file=None)
    res = read_results(path)
    events = evaluation_events(seq.gt, res, path=adl)
    assert events.switch_frames.tolist() == [SWITCH_FRAME]
    e = events.at(SWITCH_FRAME)
    (k,) = np.flatnonzero(e.switched)
    assert seq.gt.track_id[e.matched_gt[k]] == SWITCH_OBJECT
    assert (res.track_id[e.matched_res[k]], e.previous_id[k]) == (NEW_ID, SWITCH_OBJECT)

    overlay = Overlay(res, events=events, gt_boxes=seq.gt.boxes, trail=0, hold=1)
    drawn = dict(draw_frames(seq, overlay, range(SWITCH_FRAME - 1, SWITCH_FRAME + 2), QUARTER))
    for f, im in drawn.items():
        (row,) = np.flatnonzero((res.frame == f) & np.isin(res.track_id, [SWITCH_OBJECT, NEW_ID]))
        band = np.asarray(im)[left_edge(res.boxes[row], 0.25)]
        outlined = (band == SWITCH).all(axis=-1).mean()
        assert outlined > 0.9 if f == SWITCH_FRAME else outlined == 0, (f, outlined)

    # the command line says where the switches are, and they are the evaluation's
    code, stdout, err = run(capsys, "render", adl, "--results", tmp_path / "res", "--gt",
                            "--out", tmp_path / "s.png", "--frames", "7:9", "--scale", "0.25",
                            "--quiet")
    assert code == 0, err
    assert f"1 identity switches; in the frames drawn: 1 (frames {SWITCH_FRAME})" in stdout
    assert Image.open(tmp_path / "s.png").size == (3 * 480 + 2 * 4, 270)


def fake_tracker(gt, rng: np.random.Generator) -> TrackResults:
    """Ground truth jittered, 10% dropped, two ids swapped after the middle, 5% false boxes.

    The two ids swapped are the scored objects in most frames; distractors stay in.
    """
    keep = rng.random(len(gt)) > 0.1
    frame, ids, boxes = gt.frame[keep], gt.track_id[keep].copy(), gt.boxes[keep].copy()
    scored = ids[(gt.flag[keep] != 0) & np.isin(gt.class_id[keep], [-1, 1])]
    counted, counts = np.unique(scored, return_counts=True)
    a, b = counted[np.argsort(-counts, kind="stable")[:2]]
    late = frame > np.median(frame)
    ids[late & (gt.track_id[keep] == a)], ids[late & (gt.track_id[keep] == b)] = b, a
    size = boxes[:, 2:] - boxes[:, :2]
    boxes += np.tile(rng.normal(0, 0.06, (len(boxes), 2)) * size, 2)
    n_fp = len(boxes) // 20
    fp_xy = rng.uniform(0, 800, (n_fp, 2))
    fp = np.column_stack([fp_xy, fp_xy + rng.uniform(30, 200, (n_fp, 2))])
    return TrackResults(np.concatenate([frame, rng.choice(np.unique(frame), n_fp)]),
                        np.concatenate([ids, 50_000 + np.arange(n_fp)]),
                        np.vstack([boxes, fp]), np.ones(len(frame) + n_fp))


@pytest.mark.integration
@pytest.mark.parametrize("where", [ADL, ("MOT17-mini", "train", "MOT17-05-FRCNN")],
                         ids=["MOT15", "MOT17"])
def test_running_scores_end_at_the_evaluations(data_root, where):
    path = data_root.joinpath(*where)
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    gt = load_sequence(path, det_file=None).gt
    res = fake_tracker(gt, np.random.default_rng(0))
    events = evaluation_events(gt, res, path=path)
    m = evaluate_sequence(gt, res, path=path)
    end = events.score_through(int(gt.frame.max()))
    assert (end.clear.tp, end.clear.fp, end.clear.fn, end.clear.idsw) == (
        m.clear.tp, m.clear.fp, m.clear.fn, m.clear.idsw)
    assert end.mota == pytest.approx(m.clear.mota)
    assert end.idf1 == pytest.approx(m.identity.idf1)
    assert m.clear.idsw >= 1
    assert sum(e.n_switches for e in events.events) == m.clear.idsw
    # every result row is drawn as exactly one of: matched, false positive, ignored
    drawn = np.concatenate([np.concatenate([e.matched_res, e.false_positives, e.ignored])
                            for e in events.events])
    assert np.array_equal(np.sort(drawn), np.arange(len(res)))
    if where[0] != "MOT15":  # boxes on distractors are ignored, not false positives
        assert sum(len(e.ignored) for e in events.events) > 0


# ------------------------------------------------------------------ identity timeline


def test_timeline_shows_the_switch_and_the_gap(capsys, adl, tmp_path):
    rows = gt_rows(adl, 12)
    gap = (rows[:, 1] == 3) & np.isin(rows[:, 0], [4, 5])  # object 3 missed in frames 4-5
    rows[(rows[:, 1] == SWITCH_OBJECT) & (rows[:, 0] >= SWITCH_FRAME), 1] = NEW_ID
    write_results(tmp_path / "res", adl.name, rows[~gap])
    seq = load_sequence(adl, det_file=None)
    res = read_results(tmp_path / "res" / f"{adl.name}.txt")
    t = timeline_rows(evaluation_events(seq.gt, res, path=adl), seq.n_frames)
    assert t.track.shape == (len(t.object_ids), 525)
    one = t.track[t.object_ids.tolist().index(SWITCH_OBJECT)]
    assert (one[:SWITCH_FRAME - 1] == SWITCH_OBJECT).all()
    assert (one[SWITCH_FRAME - 1:12] == NEW_ID).all()
    assert one[12] == MISSED  # no results after frame 12: every object there is missed
    three = t.track[t.object_ids.tolist().index(3)]
    assert three[3:5].tolist() == [MISSED, MISSED] and three[2] == three[5] == 3
    assert t.switches.tolist() == [[t.object_ids.tolist().index(SWITCH_OBJECT),
                                    SWITCH_FRAME - 1]]
    assert (t.track == ABSENT).any()  # objects enter later

    plot = tmp_path / "timeline.png"
    code, stdout, err = run(capsys, "eval", "--gt", adl, "--results", tmp_path / "res",
                            "--plot", plot)
    assert code == 0, err
    assert f"identity timeline written to {plot}" in stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "res" / "metrics.json").is_file()


# ------------------------------------------------------------------ formats and errors


@pytest.fixture()
def tiny(tmp_path) -> tuple[Path, Path]:
    """A 96x64, 12-frame sequence and a results folder holding its ground truth."""
    seq = make_sequence(tmp_path / "train", "SEQ-01")
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "SEQ-01.txt").write_text((seq / "gt" / "gt.txt").read_text())
    return seq, tmp_path / "res"


@pytest.mark.parametrize(("suffix", "n"), [(".gif", 5), (".webp", 5), (".png", 1)])
def test_pillow_formats(capsys, tiny, tmp_path, suffix, n):
    seq, res = tiny
    out = tmp_path / f"out{suffix}"
    code, _, err = run(capsys, "render", seq, "--results", res, "--out", out, "--gt",
                       "--frames", "2:10", "--step", "2", "--scale", "2", "--quiet")
    assert code == 0, err
    with Image.open(out) as im:
        assert getattr(im, "n_frames", 1) == n
        # a PNG strip: frames 2, 4, 6, 8 in a row, 10 below
        assert im.size == ((192, 128) if n > 1 else (4 * 192 + 3 * 4, 2 * 128 + 4))


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and lines[0].startswith("deeptrack"), err
    return lines[0]


@pytest.mark.parametrize(("change", "message"), [
    (lambda a: a.update(out="x.avi"), "cannot tell the output format"),
    (lambda a: a.update(frames="5:99"), "not a range within the sequence's frames 1:12"),
    (lambda a: a.update(frames="9:3"), "is not a frame range"),
    (lambda a: a.update(scale="0"), "out of range"),
    (lambda a: a.update(results="nowhere"), "no such result file or folder"),
    (lambda a: a.update(results=".."), "no result file for sequence SEQ-01"),
    (lambda a: a.update(seq=".."), "not a sequence folder"),
    (lambda a: a.update(benchmark="MOT99"), "unknown benchmark"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(capsys, tiny, tmp_path, monkeypatch,
                                                         change, message):
    seq, res = tiny
    monkeypatch.chdir(res)
    args = {"seq": str(seq), "results": str(res), "out": "x.gif", "frames": "1:3", "scale": "1",
            "benchmark": "MOT15"}
    change(args)
    try:
        code, _, err = run(capsys, "render", args["seq"], "--results", args["results"], "--out",
                           args["out"], "--frames", args["frames"], "--scale", args["scale"],
                           "--gt", "--benchmark", args["benchmark"], "--quiet")
    except SystemExit as e:  # a flag argparse refuses
        code, err = e.code, capsys.readouterr().err
    assert code == 2
    assert message in one_line(err)
    assert sorted(p.name for p in res.iterdir()) == ["SEQ-01.txt"]


def test_no_ground_truth_for_gt_is_one_line(capsys, tiny, tmp_path):
    seq, res = tiny
    (seq / "gt" / "gt.txt").unlink()
    code, _, err = run(capsys, "render", seq, "--results", res, "--out", tmp_path / "x.gif",
                       "--gt", "--quiet")
    assert code == 2 and "no gt/gt.txt" in one_line(err)


def test_an_unreadable_frame_leaves_the_previous_output(capsys, tiny, tmp_path):
    seq, res = tiny
    out = tmp_path / "keep.gif"
    out.write_bytes(b"the previous render")
    (seq / "img1" / "000004.jpg").write_bytes(b"not a jpeg")
    code, _, err = run(capsys, "render", seq, "--results", res, "--out", out, "--quiet")
    assert code == 2 and "cannot read image" in one_line(err) and "000004.jpg" in err
    assert out.read_bytes() == b"the previous render"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_eval_plot_with_a_bad_suffix_fails_before_any_work(capsys, tiny, tmp_path):
    seq, res = tiny
    code, _, err = run(capsys, "eval", "--gt", seq, "--results", res, "--plot",
                       tmp_path / "t.jpg")
    assert code == 2 and "cannot tell the plot format" in one_line(err)
    assert not (res / "metrics.json").exists()


def test_mp4_without_the_extra_names_it(capsys, tiny, tmp_path, monkeypatch):
    seq, res = tiny
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError
    code, _, err = run(capsys, "render", seq, "--results", res, "--out", tmp_path / "x.mp4",
                       "--quiet")
    assert code == 2 and RENDER_EXTRA in one_line(err)
    assert not (tmp_path / "x.mp4").exists()


def test_the_package_imports_and_renders_gifs_without_the_extra(tiny, tmp_path):
    seq, res = tiny
    script = textwrap.dedent(f"""
        import sys
        sys.modules["av"] = None
        import deeptrack, deeptrack.cli, deeptrack.render
        assert "matplotlib" not in sys.modules, "importing deeptrack.render imports matplotlib"
        sys.exit(deeptrack.cli.main(["render", {str(seq)!r}, "--results", {str(res)!r},
                                     "--out", {str(tmp_path / "x.gif")!r}, "--quiet"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=TESTS.parent, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "x.gif").n_frames == 12


def test_identity_colours_are_stable_and_distinct():
    first = id_colours(np.arange(64))
    assert np.array_equal(first, id_colours(np.arange(64)))
    assert np.array_equal(id_colours([5, 3])[1], first[3])
    c = id_colours(np.arange(1000)).astype(int)
    # ids less than 25 apart (often neighbours in a scene) differ by 43+ in some channel
    assert min(np.abs(c[k:] - c[:-k]).max(axis=1).min() for k in range(1, 25)) >= 43


def test_frames_without_any_box_draw_cleanly():
    res = TrackResults.empty()
    im = Image.new("RGB", (64, 48))
    Overlay(res, title="empty", n_frames=3).draw(im, 2, (1.0, 1.0))
    assert np.asarray(im)[20, 40].tolist() == [0, 0, 0]  # outside the title and legend
