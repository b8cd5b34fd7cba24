"""Faults injected into the command line: each ends in one line on stderr, exit status 2,
and no partial result set; what an interrupted run leaves behind is cleaned by the next.

Covers a process killed during feature extraction and while writing results, an
output folder that cannot be written, a disk that fills up midway, and the hostile
inputs of issue 13 (non-finite flags, configs and seqinfo.ini values, huge ids).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cli_support import run

from deeptrack.io import mot, resultset

TESTS = Path(__file__).resolve().parent


def one_line(err: str) -> str:
    """The one error line of stderr (per-sequence summaries printed before it aside)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("deeptrack"), err
    return lines[0]


def leftovers(folder: Path, name: str) -> list[str]:
    """Temporary folders of result set ``name`` left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# ------------------------------------------------------------------ kills


def _child(script: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.stderr.read()}")
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the child")
        time.sleep(0.05)


def test_kill_during_extraction_then_the_next_run_cleans_up(capsys, split, tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = ["track", str(split / "SEQ-01"), "--weights", "random", "--cache-dir", str(cache),
            "--batch-size", "1", "--out", str(out), "--quiet"]
    proc = _child(f"""
        import time
        from deeptrack.appearance import embedder

        slow = embedder.RoIEmbedder.roi_features_batch
        def crawl(self, *a, **k):
            time.sleep(0.3)
            return slow(self, *a, **k)
        embedder.RoIEmbedder.roi_features_batch = crawl
        from deeptrack.cli import main
        main({args!r})
    """)
    try:
        _wait_for(lambda: cache.is_dir() and any(
            (p / "maps.npy").exists() for p in cache.iterdir() if p.name.startswith(".tmp-")),
            proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    orphans = [p for p in cache.iterdir() if p.name.startswith(".tmp-")]
    assert orphans and (orphans[0] / "maps.npy").stat().st_size > 0
    assert not out.exists() and leftovers(tmp_path, "out") == []  # no result set at all

    code, _, err = run(capsys, *args)  # the next run
    assert code == 0, err
    assert not any(p.exists() for p in orphans)
    assert [p.name.startswith(".") for p in cache.iterdir()] == [False]  # one entry, no temp
    assert sorted(p.name for p in out.iterdir()) == ["SEQ-01.txt", "config.json",
                                                     "manifest.json"]


def test_kill_while_writing_results_then_the_next_run_cleans_up(capsys, split, tmp_path):
    out = tmp_path / "out"
    args = ["track", str(split), "--no-appearance", "--out", str(out), "--quiet"]
    proc = _child(f"""
        import time
        import deeptrack.io.resultset as rs

        write = rs._write_file
        def stall(path, data):
            write(path, data)
            print("one file written", flush=True)
            time.sleep(60)
        rs._write_file = stall
        from deeptrack.cli import main
        main({args!r})
    """)
    try:
        assert proc.stdout.readline().strip() == "one file written"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (tmp,) = leftovers(tmp_path, "out")
    assert tmp.startswith(f".out.tmp-{proc.pid}-") and not out.exists()

    code, _, err = run(capsys, *args)
    assert code == 0, err
    assert leftovers(tmp_path, "out") == []
    assert sorted(p.name for p in out.iterdir()) == ["SEQ-01.txt", "SEQ-02.txt", "config.json",
                                                     "manifest.json"]


# ------------------------------------------------------------------ unwritable, full


def test_output_under_a_file_is_one_line(capsys, split, tmp_path):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "out"
    code, _, err = run(capsys, "track", split, "--no-appearance", "--out", out, "--quiet")
    assert code == 2
    assert f"{tmp_path / 'file'} is a file, not a folder" in one_line(err)
    assert (tmp_path / "file").read_text() == "x"


def test_unwritable_output_folder_is_one_line_and_leaves_nothing(capsys, split, tmp_path,
                                                                monkeypatch):
    parent = tmp_path / "locked"
    parent.mkdir()
    if os.geteuid() != 0:  # a real permission; root ignores it, so simulate it there
        parent.chmod(0o500)
    else:
        real_mkdir = Path.mkdir

        def refuse(self, *a, **k):
            if self.parent == parent:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_mkdir(self, *a, **k)

        monkeypatch.setattr(Path, "mkdir", refuse)
    try:
        code, _, err = run(capsys, "track", split, "--no-appearance", "--out", parent / "out",
                           "--quiet")
    finally:
        parent.chmod(0o700)
    assert code == 2
    assert "Permission denied" in one_line(err) and str(parent / "out") in err
    assert list(parent.iterdir()) == []


@pytest.mark.parametrize("reuse", [False, True])
def test_full_disk_midway_leaves_no_partial_result_set(capsys, split, tmp_path, monkeypatch,
                                                       reuse):
    out = tmp_path / "out"
    if reuse:  # an earlier result set is there: it must survive whole
        assert run(capsys, "track", split, "--no-appearance", "--out", out, "--quiet")[0] == 0
    before = snapshot(out) if reuse else None
    write = resultset._write_file
    calls = []

    def fill_up(path, data):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write(path, data)

    monkeypatch.setattr(resultset, "_write_file", fill_up)
    code, _, err = run(capsys, "track", split, "--no-appearance", "--out", out, "--quiet")
    assert code == 2
    assert "No space left on device" in one_line(err) and "nothing was written" in err
    assert leftovers(tmp_path, "out") == []
    if reuse:
        assert snapshot(out) == before
    else:
        assert not out.exists()


def test_full_disk_while_eval_writes_metrics_keeps_the_old_file(capsys, split, tmp_path,
                                                              monkeypatch):
    out = tmp_path / "out"
    assert run(capsys, "track", split, "--no-appearance", "--out", out, "--quiet")[0] == 0
    assert run(capsys, "eval", "--gt", split, "--results", out)[0] == 0
    before = (out / "metrics.json").read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mot.os, "fsync", no_space)
    code, _, err = run(capsys, "eval", "--gt", split, "--results", out)
    assert code == 2 and "No space left on device" in one_line(err)
    assert (out / "metrics.json").read_bytes() == before
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_compare_is_all_or_nothing_too(capsys, split, tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    monkeypatch.setattr(resultset, "_write_file", lambda path, data: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device", str(path))))
    code, _, err = run(capsys, "compare", split, "--pooling", "none", "--out", out,
                            "--quiet")
    assert code == 2 and "No space left" in one_line(err)
    assert not out.exists() and leftovers(tmp_path, "cmp") == []


# ------------------------------------------------------------------ reuse of --out


def test_reused_out_is_replaced_whole_or_refused(capsys, split, tmp_path):
    out = tmp_path / "out"
    assert run(capsys, "track", split, "--no-appearance", "--out", out, "--quiet")[0] == 0
    code, stdout, _ = run(capsys, "track", split / "SEQ-01", "--no-appearance", "--out", out,
                          "--quiet")
    assert code == 0 and "replacing the previous result set" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["SEQ-01.txt", "config.json",
                                                     "manifest.json"]  # SEQ-02.txt is gone
    (out / "mine.txt").write_text("keep me")
    code, _, err = run(capsys, "track", split, "--no-appearance", "--out", out, "--quiet")
    assert code == 2 and "mine.txt" in one_line(err)
    assert (out / "mine.txt").read_text() == "keep me"


def test_eval_refuses_a_file_changed_after_the_run(capsys, split, tmp_path):
    out = tmp_path / "out"
    assert run(capsys, "track", split, "--no-appearance", "--out", out, "--quiet")[0] == 0
    with open(out / "SEQ-02.txt", "a") as f:
        f.write("12,77,1,1,5,5,1,-1,-1,-1\n")
    code, _, err = run(capsys, "eval", "--gt", split, "--results", out)
    assert code == 2 and "SEQ-02.txt: differs from the file the run wrote" in one_line(err)


# ------------------------------------------------------------------ hostile inputs


def _set_ini(seq: Path, key: str, value: str) -> None:
    ini = seq / "seqinfo.ini"
    ini.write_text("\n".join(f"{key}={value}" if ln.startswith(f"{key}=") else ln
                             for ln in ini.read_text().splitlines()) + "\n")


def _no_images_huge_length(s: Path) -> None:
    for seq in s.iterdir():
        for p in (seq / "img1").iterdir():
            p.unlink()
        (seq / "img1").rmdir()
        _set_ini(seq, "seqLength", "50000000000")


HOSTILE = {
    "frameRate inf": (lambda s: _set_ini(s / "SEQ-01", "frameRate", "inf"), [],
                      "frameRate=inf is not a finite number"),
    "frameRate 1e9": (lambda s: _set_ini(s / "SEQ-01", "frameRate", "1e9"), [],
                      "frameRate=1e9 is beyond 1000"),
    "huge seqLength": (_no_images_huge_length, [], "seqLength=50000000000 is beyond"),
    "min-confidence nan": (None, ["--min-confidence", "nan"],
                           "argument --min-confidence: 'nan' is not a finite number"),
    "min-confidence inf": (None, ["--min-confidence", "inf"], "--min-confidence"),
    "image-scale 0": (None, ["--image-scale", "0"], "argument --image-scale"),
    "batch-size 0": (None, ["--batch-size", "0"], "argument --batch-size"),
    "gem nan": (None, ["--pooling", "gem:nan", "--weights", "random"], "GeM's p"),
    "config nan": (lambda s: (s.parent / "c.yaml").write_text("min_confidence: .nan\n"),
                   ["--config", "{root}/c.yaml"], "'min_confidence' = nan is not a finite"),
    "det id 1e30": (lambda s: (s / "SEQ-02" / "det" / "det.txt").write_text(
        "1,1e30,1,1,5,5,0.9\n"), [], "det.txt:1: id column is 1e+30"),
    "det x 1e300": (lambda s: (s / "SEQ-02" / "det" / "det.txt").write_text(
        "1,-1,1e300,1,5,5,0.9\n"), [], "det.txt:1: box"),
    "det-file outside det/": (None, ["--det-file", "../gt/gt.txt"], "argument --det-file"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_track_inputs_are_one_line_exit_2(capsys, split, tmp_path, case):
    damage, flags, needle = HOSTILE[case]
    if damage is not None:
        damage(split)
    out = tmp_path / "out"
    flags = [f.format(root=split.parent) for f in flags]
    argv = ["track", split, "--out", out, "--quiet", *flags]
    if "--weights" not in flags:
        argv.append("--no-appearance")
    try:
        code, _, err = run(capsys, *argv)
    except SystemExit as e:  # argparse: a flag's type refused the value
        code, err = e.code, capsys.readouterr().err
    assert code == 2
    assert needle in one_line(err)
    assert not out.exists() and leftovers(tmp_path, "out") == []


@pytest.mark.parametrize(("argv", "needle"), [
    (["--objects", "-1"], "argument --objects: -1 is out of range"),
    (["--frames", "0"], "argument --frames"),
    (["--seed", "-1"], "argument --seed"),
    (["--objects", "nan"], "argument --objects: 'nan' is not an integer"),
    (["--objects", "1000", "--frames", "100000"], "more than the demo holds"),
])
def test_hostile_demo_arguments_are_one_line_exit_2(capsys, argv, needle):
    try:
        code, _, err = run(capsys, "demo", *argv)
    except SystemExit as e:
        code, err = e.code, capsys.readouterr().err
    assert code == 2 and needle in one_line(err)


def test_bad_cache_bound_in_the_environment_is_one_line(capsys, split, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPTRACK_CACHE_MAX_BYTES", "lots")
    code, _, err = run(capsys, "track", split, "--weights", "random", "--out", tmp_path / "o",
                       "--cache-dir", tmp_path / "c", "--quiet")
    assert code == 2 and "DEEPTRACK_CACHE_MAX_BYTES='lots'" in one_line(err)


def test_eval_with_a_huge_result_id_names_the_line(capsys, split, tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    for seq in ("SEQ-01", "SEQ-02"):
        (res / f"{seq}.txt").write_text("1,1,1,1,5,5,1,-1,-1,-1\n2,1e30,1,1,5,5,1,-1,-1,-1\n")
    code, _, err = run(capsys, "eval", "--gt", split, "--results", res)
    assert code == 2
    assert "SEQ-01.txt:2: id 1e+30 is beyond the largest id supported" in one_line(err)
    assert not (res / "metrics.json").exists()


def test_what_track_writes_eval_reads(capsys, split, tmp_path):
    # tiny boxes: a width of 1e-7 px was written as 0, and eval then refused the file
    det = split / "SEQ-01" / "det" / "det.txt"
    det.write_text("".join(f"{f},-1,10,10,0.0000001,0.0000002,0.9,-1,-1,-1\n"
                           for f in range(1, 13)))
    (split / "SEQ-02" / "det" / "det.txt").write_text("")
    out = tmp_path / "out"
    code, _, err = run(capsys, "track", split, "--no-appearance", "--out", out, "--quiet")
    assert code == 0, err
    assert "e-07," in (out / "SEQ-01.txt").read_text()  # written exactly, not as 0
    code, _, err = run(capsys, "eval", "--gt", split, "--results", out)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["combined"]
