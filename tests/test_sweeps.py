"""Sweeps as independent tasks: serial, process pool, local Ray, a two-node Ray cluster, tune.

Every parallel run is compared with the serial run of the same sweep, to the
last bit of every box and every metric. The sequences are seeded synthetic
scenes; the RoI maps come from a stand-in embedder (tests/sweep_support.py),
so no backbone runs. Ray's tests skip when Ray is not installed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import run as run_cli
from sweep_support import (
    TESTS,
    always_die,
    appearance_spec,
    die_once,
    double,
    fail_on_purpose,
    write_scene,
)

from deeptrack.config import load_yaml
from deeptrack.errors import ConfigError
from deeptrack.io.mot import format_results
from deeptrack.io.resultset import read_manifest
from deeptrack.io.sequence import load_sequence
from deeptrack.pipeline import run_sequence
from deeptrack.sweeps import (
    PoolBackend,
    RayBackend,
    SerialBackend,
    Task,
    make_backend,
    plan,
    pooling_settings,
    product,
    ray_available,
    results_equal,
    run_sweep,
    run_tasks,
)
from deeptrack.sweeps.local_cluster import LocalCluster

REPO = TESTS.parent
requires_ray = pytest.mark.skipif(not ray_available(),
                                  reason="Ray is not installed (pip install 'deeptrack[ray]')")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Two good sequences with tiny frames, and a sequence whose detection file is malformed."""
    root = tmp_path_factory.mktemp("sweep")
    good = [str(write_scene(root / "train", f"SYN-{i}", seed=i, images=True, n_frames=40))
            for i in range(2)]
    bad = write_scene(root / "bad", "BAD-0", seed=5, images=True, n_frames=40)
    (bad / "det" / "det.txt").write_text("1,-1,10,10,nan,20,0.9,-1,-1,-1\n")
    return {"root": root, "good": good, "bad": str(bad)}


@pytest.fixture(scope="module")
def serial(scenes, tmp_path_factory):
    """The reference: the sweep run serially in this process, maps cached on disk."""
    spec = appearance_spec(scenes["good"], str(tmp_path_factory.mktemp("cache")))
    result = run_sweep(spec, SerialBackend())
    assert result.complete, result.failures
    return spec, result


# ---------------------------------------------------------------- the description


def test_plan_extracts_features_once_per_sequence_detection_file_and_appearance(serial):
    spec, _ = serial
    tasks = plan(spec)
    features = [t for t in tasks if t.name.startswith("features ")]
    runs = [t for t in tasks if not t.name.startswith("features ")]
    assert len(runs) == len(spec) == 2 * 2 * 3 * 2
    assert len(features) == 2 * 2  # the pooling modes and max_age share the maps
    order = {t.name: i for i, t in enumerate(tasks)}
    for t in runs:
        motion_only = "pooling=none" in t.name
        assert len(t.needs) == (0 if motion_only else 1), t.name
        for need in t.needs:  # placed after the maps it uses, of its own sequence and file
            assert order[need] < order[t.name]
            assert need.split()[1] == t.name.split()[0]


def test_the_sweep_description_is_checked_before_any_work(scenes):
    base = load_yaml(REPO / "configs" / "fused.yaml")
    with pytest.raises(ConfigError, match="tracker.max_agee"):
        product(base, scenes["good"], grid={"tracker.max_agee": [1]})
    with pytest.raises(ConfigError, match="max_age"):
        product(base, scenes["good"], grid={"tracker.max_age": [0]})
    with pytest.raises(ConfigError, match="needs its weights"):
        product(base, scenes["good"], backbones=["resnet50_c4"])
    with pytest.raises(ConfigError, match="pooling mode"):
        product(base, scenes["good"], pooling=["median"])
    assert pooling_settings("gem:4") == {"head.pooling": "gem", "head.gem_p": 4.0,
                                         "use_appearance": True}
    assert pooling_settings("none") == {"use_appearance": False}
    spec = product(base, scenes["good"], pooling=["none", "gem:4"],
                   backbones={"resnet50_c4": "w.pth"}, grid={"tracker.n_init": [1, 2]})
    assert [v.label for v in spec.variants][:2] == [
        "pooling=none backbone=resnet50_c4 tracker.n_init=1",
        "pooling=none backbone=resnet50_c4 tracker.n_init=2"]
    cfg = spec.variants[-1].config
    assert (cfg.head.gem_p, cfg.appearance.backbone, cfg.appearance.layer,
            cfg.appearance.weights, cfg.tracker.n_init) == (4.0, "resnet50_c4", None, "w.pth", 2)


def test_a_task_computes_what_a_single_run_computes(serial):
    spec, result = serial
    run = next(r for r in result.runs if "pooling=none" in r.label)
    cfg = next(v.config for v in spec.variants if v.label == run.label)
    seq = load_sequence(run.path, det_file=run.det_file)
    alone = run_sequence(seq, dataclasses.replace(cfg, det_file=run.det_file))
    assert format_results(alone.results) == format_results(run.run.results)


def test_the_maps_reach_the_tracker(serial):
    _, result = serial  # else the equality tests below would not test the feature path
    by_key = {(r.path, r.det_file, r.label): format_results(r.run.results) for r in result.runs}
    differs = [k for k in by_key if "pooling=avg" in k[2]
               and by_key[k] != by_key[(k[0], k[1], k[2].replace("pooling=avg", "pooling=none"))]]
    assert differs


# ---------------------------------------------------------------- process pool


def test_process_pool_gives_the_serial_results_to_the_last_digit(serial):
    spec, reference = serial
    backend = PoolBackend(workers=2)
    try:
        result = run_sweep(spec, backend)
    finally:
        backend.close()
    assert result.complete, result.failures
    assert result.transport == "cache"
    assert results_equal(reference.runs, result.runs)
    assert [o.name for o in result.outcomes] == [o.name for o in reference.outcomes]


def test_process_pool_retries_a_killed_worker_and_names_the_task_that_keeps_dying(tmp_path):
    tasks = [Task("dies once", die_once, (str(tmp_path / "marker"), 7)),
             Task("doubles", double, (21,)),
             Task("always dies", always_die),
             Task("needs the dead one", double, (), needs=("always dies",))]
    backend = PoolBackend(workers=2, max_retries=1)
    seen = []
    try:
        outcomes = run_tasks(tasks, backend, progress=lambda o, done, total: seen.append(done))
    finally:
        backend.close()
    by_name = {o.name: o for o in outcomes}
    assert by_name["dies once"].ok and by_name["dies once"].value == 7
    assert by_name["dies once"].attempts == 2
    assert by_name["doubles"].ok and by_name["doubles"].value == 42
    assert not by_name["always dies"].ok
    assert "worker process died" in by_name["always dies"].error
    assert by_name["needs the dead one"].error == "not run: needs always dies, which failed"
    assert sorted(seen) == [1, 2, 3, 4]


def test_tasks_in_a_pool_broken_by_another_are_not_charged_for_its_death():
    # With no retries at all, only the task whose worker dies while it runs alone may
    # fail: the others in the broken pool are rerun alone and complete (CI once failed
    # an innocent task that happened to be in flight during two deaths).
    tasks = [Task("always dies", always_die)] + [Task(f"doubles {i}", double, (i,))
                                                 for i in range(6)]
    backend = PoolBackend(workers=2, max_retries=0)
    try:
        outcomes = {o.name: o for o in run_tasks(tasks, backend)}
    finally:
        backend.close()
    assert not outcomes["always dies"].ok
    assert "worker process died" in outcomes["always dies"].error
    assert all(outcomes[f"doubles {i}"].ok and outcomes[f"doubles {i}"].value == 2 * i
               for i in range(6))


def test_a_bad_sequence_fails_by_name_and_the_rest_completes(scenes):
    spec = appearance_spec([scenes["good"][0], scenes["bad"]], None)
    result = run_sweep(spec)
    assert not result.complete
    failed = {o.name: o.error for o in result.failures}
    assert "features BAD-0/det.txt mobilenet_v2:stride32 x0.5" in failed
    assert any("NaN" in e or "nan" in e for e in failed.values())
    assert "BAD-0/det.txt pooling=none tracker.max_age=5" in failed  # motion only: its own error
    assert failed["BAD-0/det.txt pooling=avg tracker.max_age=5"] == (
        "not run: needs features BAD-0/det.txt mobilenet_v2:stride32 x0.5, which failed")
    assert len(failed) == 1 + 6  # the maps and the runs of BAD-0's malformed file
    # all of the good sequence's runs, and those of BAD-0's other detection file
    assert [(r.sequence, r.det_file) for r in result.runs].count(("SYN-0", "det.txt")) == 6
    assert len(result.runs) == 12 + 6
    assert not any("BAD-0/det_sparse.txt" in name for name in failed)


def test_compare_with_workers_writes_the_serial_files_and_marks_a_partial_set(split, tmp_path,
                                                                               capsys, monkeypatch):
    serial_out, tasks_out, partial_out = (tmp_path / n for n in ("serial", "tasks", "partial"))
    code, _, err = run_cli(capsys, "compare", split, "--pooling", "none", "--quiet",
                           "--out", serial_out)
    assert code == 0, err
    code, _, err = run_cli(capsys, "compare", split, "--pooling", "none", "--quiet",
                           "--workers", "1", "--out", tasks_out)
    assert code == 0, err
    for name in ("none/SEQ-01.txt", "none/SEQ-02.txt"):
        assert (serial_out / name).read_bytes() == (tasks_out / name).read_bytes()

    from deeptrack.sweeps import runner

    real = runner.track

    def track_or_fail(job, features=None):
        if job.sequence.endswith("SEQ-02"):
            raise RuntimeError("disk on fire")
        return real(job, features)

    monkeypatch.setattr(runner, "track", track_or_fail)
    code, _, err = run_cli(capsys, "compare", split, "--pooling", "none", "--quiet",
                           "--workers", "1", "--out", partial_out)
    assert code == 1
    assert "task failed: SEQ-02/det.txt none: RuntimeError: disk on fire" in err
    assert "INCOMPLETE" in err
    assert (partial_out / "none" / "SEQ-01.txt").exists()
    assert not (partial_out / "none" / "SEQ-02.txt").exists()
    failures = json.loads((partial_out / "failures.json").read_text())
    assert failures["complete"] is False
    assert failures["failed"][0]["task"] == "SEQ-02/det.txt none"
    summary = json.loads((partial_out / "compare.json").read_text())
    assert summary["complete"] is False and summary["rows"][0]["missing"] == ["SEQ-02"]
    assert "INCOMPLETE" in read_manifest(partial_out)["command"]


def test_make_backend_picks_the_engine():
    assert isinstance(make_backend(None), SerialBackend)
    assert isinstance(make_backend(1), SerialBackend)
    assert isinstance(make_backend(2, engine="pool"), PoolBackend)
    assert isinstance(make_backend(address="127.0.0.1:6379"), RayBackend)
    with pytest.raises(ConfigError, match="workers"):
        make_backend(0)
    if ray_available():
        assert isinstance(make_backend(2), RayBackend)
    else:
        assert isinstance(make_backend(2), PoolBackend)


# ---------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_backend():
    """A local Ray instance with 2 CPUs for this module's Ray tests; shut down after them."""
    if not ray_available():
        pytest.skip("Ray is not installed (pip install 'deeptrack[ray]')")
    backend = RayBackend(workers=2, init_kwargs={
        "runtime_env": {"env_vars": {"PYTHONPATH": str(TESTS)}},
        "object_store_memory": 128 << 20})
    backend.connect()
    yield backend
    backend.close()


@requires_ray
@pytest.mark.parametrize("transport", ["cache", "object_store"])
def test_local_ray_gives_the_serial_results_to_the_last_digit(serial, ray_backend, transport):
    spec, reference = serial
    result = run_sweep(spec, ray_backend, transport=transport)
    assert result.complete, result.failures
    assert result.transport == transport
    assert results_equal(reference.runs, result.runs)
    assert all("Ray node" in o.node for o in result.outcomes)


@requires_ray
def test_ray_names_failed_tasks_and_retries_a_killed_worker(ray_backend, tmp_path):
    backend = RayBackend(max_retries=1)  # on the module's instance
    tasks = [Task("dies once", die_once, (str(tmp_path / "marker"), 7)),
             Task("raises", fail_on_purpose, ("no luck",)),
             Task("needs the failure", double, (), needs=("raises",)),
             Task("always dies", always_die),
             Task("doubles", double, (4,))]
    outcomes = {o.name: o for o in run_tasks(tasks, backend)}
    assert outcomes["dies once"].ok and outcomes["dies once"].value == 7  # Ray's retry
    assert outcomes["raises"].error == "RuntimeError: no luck"
    assert outcomes["needs the failure"].error == "not run: needs raises, which failed"
    assert not outcomes["always dies"].ok and "died" in outcomes["always dies"].error
    assert outcomes["doubles"].value == 8


@requires_ray
def test_tune_searches_on_train_scores_held_out_and_writes_a_preset(tmp_path, capsys,
                                                                   ray_backend, monkeypatch):
    for i in range(2):
        write_scene(tmp_path / "train", f"TR-{i}", seed=10 + i, n_frames=40)
    write_scene(tmp_path / "test", "HO-0", seed=20, n_frames=40)
    out = tmp_path / "tuned.yaml"
    monkeypatch.chdir(tmp_path)  # relative paths: Ray Tune runs each trial in its own folder
    code, stdout, err = run_cli(capsys, "tune", "train", "--holdout", "test",
                                "--config", REPO / "configs" / "sort.yaml",
                                "--space", "tracker.max_age=int:1:30", "--space",
                                "tracker.n_init=int:1:4", "--samples", "3", "--quiet",
                                "--out", out)
    assert code == 0, err
    preset = load_yaml(out)  # a valid preset
    text = out.read_text()
    assert "on the held-out runs (HO-0)" in text and "from " in text
    chosen = {line.split("=")[0]: int(line.split("=")[1]) for line in
              text.split("Chosen: ")[1].split(".\n")[0].split(", ")}
    assert preset.tracker.max_age == chosen["tracker.max_age"]
    assert preset.tracker.n_init == chosen["tracker.n_init"]
    assert preset.use_appearance is False  # the rest is the preset's
    rows = [line.split() for line in stdout.splitlines() if line.startswith(("train", "held"))]
    scores = {(r[0], r[1]): float(r[2]) for r in rows}
    # the preset's own values are the first trial, so the choice is never worse on train
    assert scores[("train", "tuned")] >= scores[("train", "preset")]
    assert ("held-out", "tuned") in scores and ("held-out", "preset") in scores


@requires_ray
def test_tune_refuses_keys_that_change_the_maps(tmp_path, capsys, split):
    code, _, err = run_cli(capsys, "tune", split, "--holdout", split, "--no-appearance",
                           "--space", "appearance.image_scale=float:0.5:1", "--out",
                           tmp_path / "t.yaml")
    assert code == 2 and "changes the RoI maps" in err


@requires_ray
def test_two_node_cluster_on_loopback_gives_the_serial_results(scenes, ray_backend, tmp_path):
    # The driver runs in a process of its own: one Ray connection per process, and this
    # one is held by the local instance (left idle meanwhile).
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    driver_env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = tmp_path / "cluster.pickle"
    with LocalCluster(nodes=2, cpus_per_node=1, env=env) as cluster:
        driver = subprocess.run(
            [sys.executable, "-c", ("import sys, sweep_support as s; "
                                    "s.cluster_check(sys.argv[1], sys.argv[2], sys.argv[3:])"),
             cluster.address, str(out), *scenes["good"]],
            check=False, env={**driver_env, **env}, capture_output=True, text=True,
            timeout=120)
    assert driver.returncode == 0, driver.stderr[-2000:]
    with open(out, "rb") as f:
        remote = pickle.load(f)
    assert not remote["failures"]
    assert (remote["transport"], remote["cpus"]) == ("object_store", 2)
    assert len(remote["nodes"]) == 2, remote["nodes"]  # the tasks ran on both nodes
    serial = run_sweep(appearance_spec(scenes["good"], None))  # float32 maps, as there
    assert results_equal(serial.runs, remote["runs"])


def test_the_package_imports_without_ray():
    code = ("import sys; sys.modules['ray'] = None; import deeptrack.sweeps, deeptrack.cli; "
            "from deeptrack.sweeps import make_backend, PoolBackend; "
            "assert isinstance(make_backend(2, engine='pool'), PoolBackend); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


def test_local_cluster_refuses_no_nodes():
    with pytest.raises(ValueError, match="nodes"):
        LocalCluster(nodes=0)


def test_missing_sequence_argument_is_an_error():
    with pytest.raises(ConfigError, match="at least one sequence"):
        product(load_yaml(REPO / "configs" / "sort.yaml"), [])


def test_duplicate_task_names_are_refused():
    with pytest.raises(ConfigError, match="two tasks"):
        run_tasks([Task("a", double, (1,)), Task("a", double, (2,))])
    with pytest.raises(ConfigError, match="not an earlier task"):
        run_tasks([Task("a", double, (), needs=("b",))])


def test_paths_in_results_are_the_spec_s_absolute_ones(serial, monkeypatch, tmp_path):
    spec, result = serial
    assert {r.path for r in result.runs} == set(spec.sequences)
    assert all(Path(p).is_dir() for p in spec.sequences)
    monkeypatch.chdir(tmp_path)
    relative = dataclasses.replace(spec, sequences=("a/SEQ",))
    assert relative.sequences == (str(tmp_path / "a" / "SEQ"),)
