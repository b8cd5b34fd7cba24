"""Mutation testing of the hot modules with mutmut 3: run it, collect the score, list survivors.

Not a test and not part of CI: a full run takes tens of minutes. Scope and
test selection live in ``[tool.mutmut]`` of pyproject.toml: mutmut mutates the
function bodies of ``deeptrack/tracking``, ``association``, ``motion`` and
``eval`` (the other files are copied unchanged so ``import deeptrack`` works in
its ``mutants/`` copy) and, for each mutant, runs those tests of ``tests_dir``
that executed the mutated function when it collected its statistics.

By default the run happens on a snapshot of the committed tree (``git archive
HEAD``) in a folder outside the repository, so that uncommitted edits made
while it runs cannot change what is measured; ``--working-tree`` copies the
working tree (tracked and untracked, not ignored files) instead. The results
go to ``benchmarks/results/mutation.{md,json}``.

Usage::

    python benchmarks/mutation.py                      # everything in scope
    python benchmarks/mutation.py --max-children 1 --budget-min 40
    python benchmarks/mutation.py --only 'deeptrack.motion.*' --only 'deeptrack.eval.hota.*'
    python benchmarks/mutation.py --rerun-survivors   # after adding tests: who dies now
    python benchmarks/mutation.py --render            # after editing EQUIVALENT

A run stopped by ``--budget-min`` keeps every result obtained so far; the
mutants it did not reach are reported as "not checked". Tests that fail on the
unmutated snapshot (someone else's change in flight) are left out and named.

mutmut is started as ``from mutmut.__main__ import cli`` (what its console
script does): ``python -m mutmut`` imports ``mutmut.__main__`` twice and the
trampolines then fail with "context has already been set".
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import fnmatch
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_WORKDIR = Path(os.environ.get("TMPDIR", "/tmp")) / "deeptrack-mutation"

#: Exit codes of a mutant's test run, as mutmut 3.3 reads them (mutmut.__main__.status_by_exit_code).
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
          2: "interrupted", None: "not checked", 34: "skipped", 35: "suspicious",
          36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout",
          -11: "segfault"}
DETECTED = ("killed", "timeout", "segfault")

#: Survivors judged equivalent (no input can tell them from the original, or none that
#: the code can receive), by mutant name, with the reason. Names are mutmut's and hold
#: for the commit recorded in the results (they number the mutations of a function).
_A, _C, _K = "deeptrack.association.assign.", "deeptrack.association.cascade.", \
    "deeptrack.association.costs."
_G, _M = "deeptrack.motion.gating.", "deeptrack.motion.kalman."
_CL, _H = "deeptrack.eval.clear.", "deeptrack.eval.hota."
_WHY = {
    "argsort": "sorts distinct row indices (a row is matched once): every sort gives the "
               "same order",
    "empty_and": "an empty side goes through the general code, which returns the same "
                 "empty result (the early return is a shortcut)",
    "unused_fields": "match_pairs reads only .pairs of the dense cascade's Matches",
    "einsum_case": "einsum labels are case-sensitive names, not meanings: the same "
                   "contraction",
    "sq_gt_1": "rows with |x|^2 <= 1 take the rescaling path, which computes the same "
               "unit vector (to rounding)",
    "neg_index": "i - 4 for i in 0..3 indexes the same elements of an axis of 8 as i + 4",
    "filterpy_shape": "filterpy reshapes z to the state's shape: (8,) or (8, 1) state, (4,) "
                      "or (4, 1) measurement give the same numbers",
    "reshape_neg": "numpy treats any negative size as the one unknown dimension",
    "const_sign": "the sign of a standard deviation that is squared, on coordinates where "
                  "the height-scaled part is 0",
    "slice": "xyah has 4 columns: 3:5 is 3:4",
    "path_choice": "chooses which of two paths computes a diagonal-S gate (a full S takes "
                   "the dense one either way); both return exactly the dense pairs "
                   "(tested), so only speed differs",
    "promotion": "the float64 weight array promotes any numeric input to float64 in the "
                 "only arithmetic done on it; the mean is a float64 array anyway",
    "margin": "changes the safety margin of the candidate bound, which stays above the "
              "rounding error it covers; the exact recheck decides",
    "edge_eq": "differs only for a value exactly equal to a threshold minus 2^-52 (or a "
               "score exactly EPS), which no box pair produces",
    "dtype_default": "numpy's default dtype here is the one asked for (float64 / int64) or "
                     "a float holding the same small integer counts",
    "strict_zip": "the zipped per-frame tuples have equal lengths by construction",
    "minlength": "ids are renumbered 0..n-1 and all occur, so bincount already has n bins "
                 "(or the indices read stay below its length)",
    "ok_none": "weight[None] = sim / denom everywhere; cells with denom <= EPS have sim 0 "
               "and are never read (only sim > 0 pairs are)",
    "sim_ge_0": "pairs with IoU 0 get weight 0, alignment 0, score 0: same assignment and "
                "counts",
    "unreachable": "only reached when no frame has both ground truth and results, where "
                   "hota() then failed anyway at np.concatenate(m_keys) (the bug fixed in "
                   "1d94594); since then reached, and still equivalent: weights of shape "
                   "(1,) broadcast onto an empty index add nothing",
    "previous_neg": "any negative value means 'not matched' (tests are < 0)",
    "present_pos": "every renumbered gt id is present in some frame, so present > 0 holds "
                   "everywhere",
    "mm_distance": "motmetrics uses these distances only for NaN or not: the official pairs "
                   "are forced and MOTP is computed from our own IoU sum",
    "return_dataframe": "None and False are both false for motmetrics",
}
#: Runs (1-based, in mutation.json's order) whose survivors have all been judged: the
#: unmarked ones there are real gaps; elsewhere they are simply not looked at yet.
JUDGED_RUNS = {1}

#: Notes on survivors that are neither killed nor equivalent, by mutant name.
NOTES: dict[str, str] = {
    _H + "x_hota__mutmut_67": "reached only since 1d94594 fixed the crash it sat before; "
                              "there the disjoint-frames test fails on it (np.add.at shape "
                              "mismatch)",
}
EQUIVALENT: dict[str, str] = {
    **{_A + f"x_solve_pairs__mutmut_{i}": _WHY["argsort"] for i in (18, 20, 22)},
    **{_C + f"x_matching_cascade_lazy__mutmut_{i}": _WHY["argsort"] for i in (16, 18, 20)},
    _A + "x_solve__mutmut_16": _WHY["empty_and"],
    _A + "x_match_pairs__mutmut_10": _WHY["minlength"],
    _A + "x_match_pairs__mutmut_16": _WHY["minlength"],
    **{_C + f"x__dense_cascade__mutmut_{i}": _WHY["unused_fields"] for i in (11, 12, 14, 15)},
    _K + "x_l2_normalize__mutmut_16": _WHY["einsum_case"],
    _K + "x_l2_normalize__mutmut_58": _WHY["einsum_case"],
    _K + "x_l2_normalize__mutmut_20": _WHY["sq_gt_1"],
    _G + "x_gate_pairs__mutmut_2": _WHY["empty_and"],
    _G + "x_mahalanobis_sq__mutmut_1": _WHY["empty_and"],
    _G + "x_gate_pairs__mutmut_52": _WHY["einsum_case"],
    _G + "x_mahalanobis_sq__mutmut_45": _WHY["einsum_case"],
    _G + "x_gate_pairs__mutmut_20": _WHY["path_choice"],
    _G + "x_gate_pairs__mutmut_21": _WHY["path_choice"],
    **{_G + f"x_gate_pairs__mutmut_{i}": _WHY["margin"] for i in (73, 75, 76, 77, 80)},
    **{_M + f"x_to_compact__mutmut_{i}": _WHY["neg_index"] for i in (7, 8, 9)},
    **{_M + f"x_to_full__mutmut_{i}": _WHY["neg_index"] for i in (10, 13, 16, 17)},
    _M + "xǁFilterpyKalmanǁ_filter__mutmut_13": _WHY["filterpy_shape"],
    _M + "xǁFilterpyKalmanǁupdate__mutmut_19": _WHY["filterpy_shape"],
    _M + "xǁKalmanModelǁ_initiate__mutmut_11": _WHY["reshape_neg"],
    _M + "xǁKalmanModelǁ_initiate__mutmut_23": _WHY["const_sign"],
    _M + "xǁKalmanModelǁmeasurement_noise__mutmut_3": _WHY["const_sign"],
    _M + "xǁKalmanModelǁprocess_noise__mutmut_3": _WHY["const_sign"],
    _M + "xǁKalmanModelǁ_initiate__mutmut_26": _WHY["slice"],
    _M + "xǁKalmanModelǁ_initiate__mutmut_7": _WHY["promotion"],
    _M + "xǁKalmanModelǁ_initiate__mutmut_9": _WHY["promotion"],
    _CL + "x__motmetrics_counts__mutmut_5": _WHY["return_dataframe"],
    _CL + "x_clear_and_identity__mutmut_2": _WHY["empty_and"],
    **{_CL + f"x_clear_and_identity__mutmut_{i}": _WHY["previous_neg"] for i in (28, 107)},
    **{_CL + f"x_clear_and_identity__mutmut_{i}": _WHY["dtype_default"]
       for i in (23, 26, 31, 33, 36, 38, 41, 43)},
    **{_CL + f"x_clear_and_identity__mutmut_{i}": _WHY["present_pos"] for i in (127, 129)},
    **{_CL + f"x_clear_and_identity__mutmut_{i}": _WHY["strict_zip"] for i in (50, 55, 56)},
    **{_CL + f"x_clear_and_identity__mutmut_{i}": _WHY["mm_distance"]
       for i in (63, 68, 69, 80, 94, 95)},
    _CL + "x_official_matches__mutmut_7": _WHY["edge_eq"],
    _CL + "x_official_matches__mutmut_14": _WHY["edge_eq"],
    _H + "x_hota__mutmut_129": _WHY["edge_eq"],
    _H + "x_hota__mutmut_162": _WHY["edge_eq"],
    **{_H + f"x_hota__mutmut_{i}": _WHY["dtype_default"] for i in (13, 20, 166)},
    **{_H + f"x_hota__mutmut_{i}": _WHY["minlength"] for i in (17, 24)},
    **{_H + f"x_hota__mutmut_{i}": _WHY["strict_zip"] for i in (30, 34, 35, 99, 104, 105)},
    _H + "x_hota__mutmut_48": _WHY["ok_none"],
    _H + "x_hota__mutmut_49": _WHY["edge_eq"],
    _H + "x_hota__mutmut_54": _WHY["sim_ge_0"],
    _H + "x_hota__mutmut_84": _WHY["unreachable"],
}


#: Left out of mutation runs: a wall-clock assertion (meaningless under mutation on a
#: loaded machine: it would "kill" mutants by timing) and the slowest tests (5-10 s
#: each, every surviving mutant of the tracker would run them) whose code paths other
#: tests cover.
LEFT_OUT = (
    "tests/test_eval_parity.py::test_evaluating_adl_rundle_6_is_fast",
    "tests/test_tracker.py::test_memory_stays_flat_over_10000_frames",
    "tests/test_cli.py::test_track_with_appearance_from_images",
    "tests/test_cli.py::test_compare_modes_share_one_feature_pass",
)

PLUGIN = """\
\"\"\"pytest plugin for mutation runs only (written by benchmarks/mutation.py).\"\"\"
import os

import pytest
from hypothesis import Phase, settings

# No shrinking: it only makes a kill slower (often past mutmut's time limit).
settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile("mutation")


DESELECT = __LEFT_OUT__
_total = {}
_BROKEN = os.environ.get("DEEPTRACK_MUTATION_BROKEN")  # tests failing on the unmutated tree
if _BROKEN and os.path.exists(_BROKEN):
    with open(_BROKEN) as f:
        DESELECT = DESELECT + tuple(line.strip() for line in f if line.strip())


def pytest_collection_modifyitems(config, items):
    drop = [i for i in items if i.nodeid.split("[")[0] in DESELECT or i.nodeid in DESELECT]
    if drop:
        items[:] = [i for i in items if i not in drop]
        config.hook.pytest_deselected(items=drop)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # mutmut 3.3.1 records each phase's duration over the previous one, so a test's
    # recorded time is its teardown's (~0 s), every mutant's time limit becomes ~15 s,
    # and mutants whose tests simply take longer are reported as timeouts. Record
    # setup + call + teardown instead, after mutmut's own hook has run.
    yield
    import mutmut

    durations = getattr(mutmut, "duration_by_test", None)
    if durations is None:
        return
    total = call.duration + (0.0 if call.when == "setup" else _total.get(item.nodeid, 0.0))
    _total[item.nodeid] = durations[item.nodeid] = total
"""


def baseline_failures(workdir: Path, env: dict) -> list[str]:
    """Tests of ``tests_dir`` that fail on the unmutated snapshot (mutmut needs a green run).

    In a repository others are committing to, the snapshot can hold a test that
    is out of step with the code; it is left out of the run and named in the report.
    """
    import tomllib

    tests = tomllib.loads((workdir / "pyproject.toml").read_text())["tool"]["mutmut"][
        "tests_dir"]
    report = workdir / "_mutation_support" / "baseline.txt"
    code = ("import sys, pytest\n"
            "class R:\n"
            "    failed = []\n"
            "    def pytest_runtest_logreport(self, report):\n"
            "        if report.failed: self.failed.append(report.nodeid)\n"
            "r = R()\n"
            "pytest.main(['-q', '-p', 'no:randomly', *sys.argv[2:]], plugins=[r])\n"
            "open(sys.argv[1], 'w').write('\\n'.join(sorted(set(r.failed))))\n")
    subprocess.run([sys.executable, "-c", code, str(report), *tests], cwd=workdir, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return [x for x in report.read_text().splitlines() if x] if report.exists() else []


def snapshot(workdir: Path, working_tree: bool) -> str:
    """Fill ``workdir`` with the code to mutate; return a description of what was copied."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.strip()
    if not working_tree:
        data = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, check=True,
                              capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(workdir, filter="data")
        return f"commit {commit}"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           check=True, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, workdir / name)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.count("\n")
    return f"working tree on commit {commit} ({dirty} changed or untracked paths)"


def run_mutmut(workdir: Path, max_children: int, only: list[str], budget_s: float,
               log: Path) -> tuple[float, bool, list[str]]:
    """Run ``mutmut run`` in ``workdir``; stop it after ``budget_s``.

    Returns:
        (seconds, whether it was stopped, tests left out as failing without a mutant).
    """
    env = dict(os.environ)
    # The real sequences and weights, where the tests look for them (they skip otherwise).
    for var, sub in (("DEEPTRACK_DATA", "data"), ("DEEPTRACK_WEIGHTS", "weights")):
        default = REPO.parent / "shared" / sub
        if var not in env and default.exists():
            env[var] = str(default)
    # One BLAS/OpenMP thread per test process: mutmut runs max_children of them.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    cmd = [sys.executable, "-c",
           "import sys; from mutmut.__main__ import cli; sys.argv[0] = 'mutmut'; cli()",
           "run", "--max-children", str(max_children), *only]
    # Hypothesis must not shrink a failing example under a mutant: shrinking only makes
    # the kill slower (often past mutmut's time limit, which then reports a timeout).
    support = workdir / "_mutation_support"
    support.mkdir(exist_ok=True)
    (support / "deeptrack_mutation_plugin.py").write_text(
        PLUGIN.replace("__LEFT_OUT__", repr(LEFT_OUT)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(support), env.get("PYTHONPATH")]))
    env["PYTEST_ADDOPTS"] = " ".join(filter(None, [
        env.get("PYTEST_ADDOPTS"), "-p no:cacheprovider -p deeptrack_mutation_plugin"]))
    broken = baseline_failures(workdir, env)
    if broken:
        print("left out, failing without any mutant:", *broken, sep="\n  ", flush=True)
        (support / "broken.txt").write_text("\n".join(broken))
        env["DEEPTRACK_MUTATION_BROKEN"] = str(support / "broken.txt")
    start = time.monotonic()
    stopped = False
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            stopped = True
            proc.send_signal(signal.SIGINT)  # mutmut stops its children and saves results
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if proc.returncode not in (0, None) and not stopped:
        tail = log.read_bytes()[-3000:].decode(errors="replace")
        raise SystemExit(f"mutmut failed (exit {proc.returncode}); end of {log}:\n{tail}")
    return time.monotonic() - start, stopped, broken


def _changed_lines(orig: str, mutant: str) -> str:
    """The lines a mutant changes, as ``- old`` / ``+ new`` (unified diff body, trimmed)."""
    lines = []
    for line in difflib.unified_diff(orig.splitlines(), mutant.splitlines(), lineterm="", n=0):
        if line.startswith(("---", "+++", "@@")):
            continue
        lines.append(line[0] + " " + line[1:].strip())
    return "\n".join(lines)


def collect(workdir: Path) -> dict:
    """Read mutmut's per-file results from ``workdir/mutants`` and describe the survivors."""
    os.chdir(workdir)  # mutmut's helpers read pyproject.toml and mutants/ relative to cwd
    import libcst as cst
    from mutmut import __main__ as mm

    mm.ensure_config_loaded()
    modules: dict[str, dict] = {}
    for meta in sorted(Path("mutants").rglob("*.py.meta")):
        path = Path(str(meta.relative_to("mutants"))[: -len(".meta")])
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        counts = Counter(STATUS.get(c, f"exit {c}") for c in codes.values())
        module = str(path.with_suffix("")).replace(os.sep, ".")
        survivors = sorted(k for k, c in codes.items() if STATUS.get(c) == "survived")
        described = []
        if survivors:
            tree = cst.parse_module((Path("mutants") / path).read_text())
            funcs = {}
            for node in tree.body:
                if isinstance(node, cst.FunctionDef):
                    funcs[node.name.value] = node
                elif isinstance(node, cst.ClassDef) and isinstance(node.body, cst.IndentedBlock):
                    for m in node.body.body:
                        if isinstance(m, cst.FunctionDef):
                            funcs[m.name.value] = m

            def code(name, funcs=funcs):
                node = funcs.get(name.split(".")[-1])
                return "" if node is None else cst.Module([node.with_changes(
                    name=cst.Name("f"))]).code

            for key in survivors:
                orig = code(mm.mangled_name_from_mutant_name(key) + "__mutmut_orig")
                described.append({"name": key, "change": _changed_lines(orig, code(key)),
                                  "equivalent": EQUIVALENT.get(key)})
        modules[module] = {"counts": dict(counts), "total": len(codes), "survivors": described}
    return modules


def score(counts: dict) -> tuple[int, int, float | None]:
    """(detected, checked, detected / checked); checked excludes mutants never run."""
    detected = sum(counts.get(s, 0) for s in DETECTED)
    checked = sum(v for k, v in counts.items() if k not in ("not checked", "interrupted"))
    return detected, checked, (detected / checked if checked else None)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _upgrade(report: dict) -> dict:
    """Reports written by one run ({"meta", "modules"}) become the list-of-runs form."""
    if "meta" in report:
        meta = report.pop("meta")
        if "rerun" in meta:
            report["rerun"] = meta.pop("rerun")
        report["runs"] = [meta]
        for m in report["modules"].values():
            m.setdefault("run", 0)
    return report


def _run_line(meta: dict) -> str:
    left = meta.get("tests_left_out_failing")
    return (f"{meta['date']} on {meta['machine']}, mutmut {meta['mutmut']}: {meta['tree']}; "
            f"`{meta['command']}`, {meta['wall_min']:.1f} min wall"
            + (" (stopped at the time budget: unreached mutants are *not checked*)"
               if meta["stopped"] else "")
            + ("; left out as failing on the unmutated tree: "
               + ", ".join(f"`{t}`" for t in left) if left else "") + ".")


def render(report: dict) -> None:
    """Write mutation.json and mutation.md from the collected ``report``."""
    report = _upgrade(report)
    if "rerun" in report:
        report.setdefault("reruns", []).insert(0, report.pop("rerun"))
    runs, modules, reruns = report["runs"], report["modules"], report.get("reruns", [])
    for m in modules.values():  # judgements live in EQUIVALENT, re-applied on every render
        for s in m["survivors"]:
            s["equivalent"] = EQUIVALENT.get(s["name"])
    total = Counter()
    n_equivalent = 0
    for m in modules.values():
        total.update(m["counts"])
        m["killed_by_new_tests"] = sum(1 for s in m["survivors"] if s.get("rerun") in DETECTED)
        n_equivalent += sum(1 for s in m["survivors"]
                            if s["equivalent"] and s.get("rerun") not in DETECTED)
    det, chk, sc = score(total)
    later = sum(m["killed_by_new_tests"] for m in modules.values())
    report["score"] = {
        "detected": det, "checked": chk, "score": sc,
        "detected_after_new_tests": det + later,
        "score_after_new_tests": (det + later) / chk if chk else None,
        "equivalent": n_equivalent,
        "score_after_new_tests_without_equivalent":
            (det + later) / (chk - n_equivalent) if chk > n_equivalent else None,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mutation.json").write_text(json.dumps(report, indent=1) + "\n")

    sr = report["score"]
    cols = ["killed", "timeout", "survived", "no tests", "not checked"]
    lines = ["# Mutation testing (mutmut 3) of the hot modules", ""]
    lines += [f"- run {i + 1}: {_run_line(meta)}" for i, meta in enumerate(runs)]
    lines += [f"- survivors rerun: {_run_line(meta)}" for meta in reruns]
    lines += [
        "",
        ("Score = (killed + timeout) / mutants checked (*no tests* count as checked and not "
         "detected; *not checked* ones are left out). mutmut 3 mutates function bodies only "
         "(not module constants, not decorated functions such as properties). Tests: "
         "`tests_dir` of `[tool.mutmut]` in pyproject.toml, less "
         + ", ".join(f"`{t.split('::')[1]}`" for t in LEFT_OUT) + " (timing, or slowest)."),
        "",
        (f"- score of the run{'s' if len(runs) > 1 else ''}: "
         f"**{sr['detected']} / {sr['checked']} = {_pct(sr['score'])}**"),
    ]
    if reruns:
        lines.append(
            f"- survivors rerun with the tests added since: "
            f"{sr['detected_after_new_tests'] - sr['detected']} more killed, "
            f"**{sr['detected_after_new_tests']} / {sr['checked']} = "
            f"{_pct(sr['score_after_new_tests'])}**")
    lines += [
        (f"- survivors judged equivalent: {sr['equivalent']}; leaving them out: "
         f"**{_pct(sr['score_after_new_tests_without_equivalent'])}**"),
        "",
        "| module | run | mutants | " + " | ".join(cols) + " | score | killed by new tests | "
        "equivalent |",
        "|---|---:|---:|" + "---:|" * len(cols) + "---:|---:|---:|",
    ]
    for module, m in sorted(modules.items()):
        c = m["counts"]
        eq = sum(1 for s in m["survivors"]
                 if s["equivalent"] and s.get("rerun") not in DETECTED)
        lines.append(f"| {module} | {m['run'] + 1} | {m['total']} | "
                     + " | ".join(str(c.get(x, 0)) for x in cols)
                     + f" | {_pct(score(c)[2])} | {m['killed_by_new_tests']} | {eq} |")
    unjudged = [i + 1 for i in range(len(runs)) if i + 1 not in JUDGED_RUNS]
    if unjudged:
        lines += ["", (f"Survivors of run{'s' if len(unjudged) > 1 else ''} "
                       + ", ".join(map(str, unjudged)) + " are listed but not judged yet: "
                       "their equivalence column is empty because nobody has looked, and "
                       "their score is a lower bound.")]
    lines += ["", "## Surviving mutants", "",
              ("Per module: the mutant's name (`mutmut show NAME` in the run's folder prints "
               "the full diff) and the lines it changes. **killed later**: killed on the "
               "rerun with the tests added after the run; *equivalent*: judged "
               "indistinguishable from the original, with the reason; unmarked: a real gap."),
              ""]
    for module, m in sorted(modules.items()):
        if not m["survivors"]:
            continue
        lines += [f"### {module} ({len(m['survivors'])})", ""]
        for s in m["survivors"]:
            change = s["change"].replace("\n", " / ") if s["change"] else "(no diff)"
            short = s["name"].split(".")[-1]
            tags = []
            if s.get("rerun") in DETECTED:
                tags.append("**killed later**")
            elif s["equivalent"]:
                tags.append(f"*equivalent*: {s['equivalent']}")
            if s["name"] in NOTES:
                tags.append(NOTES[s["name"]])
            lines.append(f"- `{short}`: `{change}`" + (" — " + "; ".join(tags) if tags else ""))
        lines.append("")
    (RESULTS / "mutation.md").write_text("\n".join(lines))


def _run_meta(tree: str, command: str, args, wall: float, stopped: bool) -> dict:
    import mutmut

    return {"date": dt.datetime.now().isoformat(timespec="seconds"), "tree": tree,
            "command": command, "mutmut": mutmut.__version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                       f"Python {platform.python_version()}",
            "max_children": args.max_children, "only": args.only,
            "wall_min": wall / 60, "stopped": stopped}


def _commit_of(tree: str) -> str:
    return tree.split("commit ")[1].split()[0]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                    help="folder for the snapshot and mutmut's mutants/ (replaced)")
    ap.add_argument("--working-tree", action="store_true",
                    help="mutate the working tree instead of the committed HEAD")
    ap.add_argument("--max-children", type=int, default=1,
                    help="mutants tested in parallel (default 1: a shared 2-core machine)")
    ap.add_argument("--budget-min", type=float, default=40.0,
                    help="stop mutmut after this many minutes, keeping its results")
    ap.add_argument("--only", action="append", default=[],
                    help="mutant name pattern, e.g. 'deeptrack.motion.*' (repeatable)")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="run only the survivors recorded in mutation.json (those matching "
                         "--only, if given) on a fresh snapshot, with the tests added since, "
                         "and record which now die")
    ap.add_argument("--append", action="store_true",
                    help="add this run's modules to mutation.json instead of replacing it")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite mutation.md from mutation.json (e.g. after editing "
                         "EQUIVALENT)")
    args = ap.parse_args(argv)
    command = " ".join(["python benchmarks/mutation.py", *(sys.argv[1:] if argv is None
                                                             else argv)])
    workdir = args.workdir.resolve()
    log = workdir.parent / (workdir.name + ".log")

    if args.render:
        render(json.loads((RESULTS / "mutation.json").read_text()))
        return
    if args.rerun_survivors:
        report = _upgrade(json.loads((RESULTS / "mutation.json").read_text()))
        names = [s["name"] for m in report["modules"].values() for s in m["survivors"]
                 if not args.only or any(fnmatch.fnmatch(s["name"], p) for p in args.only)]
        changed = ""
        for module, m in report["modules"].items():
            if not any(name.startswith(module + ".") for name in names):
                continue
            old = _commit_of(report["runs"][m["run"]]["tree"])
            changed += subprocess.run(
                ["git", "diff", "--name-only", old, "HEAD", "--",
                 module.replace(".", "/") + ".py"],
                cwd=REPO, check=True, capture_output=True, text=True).stdout
        if changed.strip() and not args.working_tree:
            raise SystemExit(f"mutated sources changed since their run; mutant names would not "
                             f"match:\n{changed}")
        tree = snapshot(workdir, args.working_tree)
        print(f"rerunning {len(names)} survivors on {tree} in {workdir}; log {log}", flush=True)
        wall, stopped, broken = run_mutmut(workdir, args.max_children, names,
                                           args.budget_min * 60, log)
        args.only = args.only or ["(the survivors)"]
        meta = _run_meta(tree, command, args, wall, stopped)
        meta["tests_left_out_failing"] = broken
        report.setdefault("reruns", [])
        if "rerun" in report:  # reports from before several reruns were kept
            report["reruns"].insert(0, report.pop("rerun"))
        report["reruns"].append(meta)
        statuses = {}
        for meta_path in Path(workdir, "mutants").rglob("*.py.meta"):
            for k, c in json.loads(meta_path.read_text())["exit_code_by_key"].items():
                statuses[k] = STATUS.get(c, f"exit {c}")
        for m in report["modules"].values():
            for s in m["survivors"]:
                if s["name"] in names:
                    s["rerun"] = statuses.get(s["name"], "not checked")
        render(report)
    else:
        tree = snapshot(workdir, args.working_tree)
        print(f"mutating {tree} in {workdir}; log {log}", flush=True)
        wall, stopped, broken = run_mutmut(workdir, args.max_children, args.only,
                                           args.budget_min * 60, log)
        meta = _run_meta(tree, command, args, wall, stopped)
        meta["tests_left_out_failing"] = broken
        modules = collect(workdir)
        if args.only:  # modules outside the run's scope are not reported as "not checked"
            modules = {k: v for k, v in modules.items()
                       if any(fnmatch.fnmatch(f"{k}.x", p) or p.startswith(k + ".")
                              for p in args.only)}
        report = {"runs": [], "modules": {}}
        if args.append and (RESULTS / "mutation.json").exists():
            report = _upgrade(json.loads((RESULTS / "mutation.json").read_text()))
        for m in modules.values():
            m["run"] = len(report["runs"])
        report["runs"].append(meta)
        report["modules"].update(modules)
        render(report)
    s = json.loads((RESULTS / "mutation.json").read_text())["score"]
    print(f"score {s['detected']}/{s['checked']} = {_pct(s['score'])}, after new tests "
          f"{_pct(s['score_after_new_tests'])}; wrote {RESULTS / 'mutation.md'}")


if __name__ == "__main__":
    main()
