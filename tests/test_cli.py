"""The command line, run in-process: each command and each error path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import run

from deeptrack.config import RunConfig, load_yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_config_loads(path):
    cfg = load_yaml(path)
    assert isinstance(cfg, RunConfig)


def test_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {"deepsort.yaml", "sort.yaml"} <= names
    assert load_yaml(REPO / "configs" / "sort.yaml").use_appearance is False


def test_track_then_eval_motion_only(capsys, split, tmp_path):
    out = tmp_path / "res"
    code, stdout, err = run(capsys, "track", split, "--no-appearance", "--out", out, "--quiet")
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.txt")) == ["SEQ-01.txt", "SEQ-02.txt"]
    assert str(out) in stdout
    code, stdout, err = run(capsys, "eval", "--gt", split, "--results", out)
    assert code == 0, err
    assert "COMBINED" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["combined"]["mota"] > 0.7


def test_eval_ground_truth_against_itself_is_perfect(capsys, split, tmp_path):
    res = tmp_path / "gt_as_results"
    res.mkdir()
    for seq in split.iterdir():
        lines = (seq / "gt" / "gt.txt").read_text().splitlines()
        res.joinpath(f"{seq.name}.txt").write_text(
            "\n".join(",".join(line.split(",")[:6] + ["1", "-1", "-1", "-1"]) for line in lines))
    code, _stdout, _ = run(capsys, "eval", "--gt", split, "--results", res,
                          "--json", tmp_path / "m.json")
    assert code == 0
    combined = json.loads((tmp_path / "m.json").read_text())["combined"]
    assert combined["mota"] == combined["idf1"] == combined["hota"] == 1.0


def test_track_with_appearance_from_images(capsys, split, tmp_path):
    out = tmp_path / "res"
    code, _, err = run(capsys, "track", split / "SEQ-01", "--weights", "random", "--out", out,
                       "--pooling", "gem:4", "--cache-dir", tmp_path / "cache", "--quiet",
                       "--image-scale", "1.0")
    assert code == 0, err
    assert (out / "SEQ-01.txt").read_text().strip()
    assert json.loads((out / "config.json").read_text())["head"]["gem_p"] == 4.0


def test_compare_modes_share_one_feature_pass(capsys, split, tmp_path):
    out = tmp_path / "cmp"
    code, _stdout, err = run(capsys, "compare", split, "--pooling", "none,avg,max,flatten",
                            "--weights", "random", "--out", out, "--quiet",
                            "--cache-dir", tmp_path / "cache", "--image-scale", "1.0")
    assert code == 0, err
    data = json.loads((out / "compare.json").read_text())
    assert [r["mode"] for r in data["rows"]] == ["none", "avg", "max", "flatten"]
    assert data["rows"][0]["dim"] == 0 and data["rows"][1]["dim"] == 1280
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one entry per sequence


def test_demo_runs(capsys):
    code, stdout, _ = run(capsys, "demo", "--objects", "5", "--frames", "60")
    assert code == 0
    assert "motion + appearance" in stdout and "motion only" in stdout


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


ERROR_CASES = {
    "missing folder": (lambda s, t: ["track", t / "nope", "--no-appearance"], "nope"),
    "unknown option": (lambda s, t: ["track", s, "--frobnicate"], "frobnicate"),
    "unknown pooling": (lambda s, t: ["track", s, "--pooling", "median", "--weights", "random"],
                        "median"),
    "bad pooling param": (lambda s, t: ["compare", s, "--pooling", "avg:3", "--weights",
                                        "random"], "avg:3"),
    "unknown config key": (lambda s, t: ["track", s, "--config", t / "bad.yaml"], "tracker.foo"),
    "missing det file": (lambda s, t: ["track", s, "--no-appearance", "--det-file", "x.txt"],
                         "x.txt"),
    "no weights": (lambda s, t: ["track", s], "weights"),
    "missing weights file": (lambda s, t: ["track", s, "--weights", t / "w.pth"], "w.pth"),
    "eval missing results": (lambda s, t: ["eval", "--gt", s, "--results", t / "none"], "none"),
    "unknown benchmark": (lambda s, t: ["eval", "--gt", s, "--results", t, "--benchmark",
                                        "MOT99"], "MOT99"),
    "--set unknown key": (lambda s, t: ["track", s, "--no-appearance", "--set",
                                        "tracker.max_agee=3"], "tracker.max_agee"),
    "--set unknown section": (lambda s, t: ["track", s, "--no-appearance", "--set",
                                            "trackr.max_age=3"], "trackr"),
    "--set bad value": (lambda s, t: ["compare", s, "--pooling", "none", "--set",
                                      "tracker.max_age=0"], "tracker.max_age"),
    "--set no value": (lambda s, t: ["track", s, "--no-appearance", "--set", "tracker.max_age"],
                       "SECTION.KEY=VALUE"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_are_one_line_exit_2_and_leave_nothing(capsys, split, tmp_path, case):
    (tmp_path / "bad.yaml").write_text("tracker:\n  foo: 1\n")
    for seq in ("SEQ-01", "SEQ-02"):
        (tmp_path / f"{seq}.txt").write_text("1,1,1,1,5,5,1,-1,-1,-1\n")
    make, needle = ERROR_CASES[case]
    out = tmp_path / "out"
    with pytest.raises(SystemExit) if case == "unknown option" else _nullcontext() as e:
        code, _, err = run(capsys, *make(split, tmp_path), "--out", out) if case not in (
            "eval missing results", "unknown benchmark") else run(capsys, *make(split, tmp_path))
    if case == "unknown option":
        assert e.value.code == 2
        err = capsys.readouterr().err
    else:
        assert code == 2
    assert str(needle) in _one_error_line(err)
    assert not out.exists()


def test_malformed_det_file_names_file_and_line(capsys, split, tmp_path):
    det = split / "SEQ-02" / "det" / "det.txt"
    lines = det.read_text().splitlines()
    lines[3] = "4,-1,abc,21,12,30,0.9,-1,-1,-1"
    det.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    code, _, err = run(capsys, "track", split, "--no-appearance", "--out", out)
    assert code == 2
    assert "det.txt:4" in _one_error_line(err)
    assert not out.exists()  # SEQ-01 was fine, but nothing is half-done


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_set_overrides_any_config_key_after_the_preset(capsys, split, tmp_path):
    out = tmp_path / "res"
    code, _, err = run(capsys, "track", split, "--config", REPO / "configs" / "sort.yaml",
                       "--set", "tracker.max_age=7", "--set", "tracker.reference_fps=null",
                       "--set", "min_confidence=0.5", "--set", "tracker.kalman=filterpy",
                       "--out", out, "--quiet")
    assert code == 0, err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["tracker"]["max_age"] == 7 and cfg["tracker"]["reference_fps"] is None
    assert cfg["tracker"]["kalman"] == "filterpy" and cfg["min_confidence"] == 0.5


def test_set_unknown_key_lists_the_valid_ones(capsys, split, tmp_path):
    code, _, err = run(capsys, "track", split, "--no-appearance", "--set", "tracker.nope=1",
                       "--out", tmp_path / "out")
    line = _one_error_line(err)
    assert code == 2 and "tracker.nope" in line and "valid keys: tracker.max_cosine_distance" in line



def test_default_cache_folder_is_read_when_the_command_runs(capsys, split, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPTRACK_CACHE", str(tmp_path / "cache"))  # after deeptrack's import
    out = tmp_path / "res"
    code, _, err = run(capsys, "track", split / "SEQ-01", "--weights", "random", "--out", out,
                       "--quiet")
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["appearance"]["cache_dir"] == str(
        tmp_path / "cache")
