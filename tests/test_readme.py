"""The README's examples run: its Python blocks execute, its command lines parse.

The library example reads frames from ``my_detector(video)``, the user's own
detector; here a seeded synthetic scene stands in for it, so the block runs as
written without data or weights. The command lines are parsed with the real
``deeptrack`` parser, so a renamed or removed flag fails here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from deeptrack.cli import MOTION_ONLY, build_parser
from deeptrack.config import RunConfig, parse_scalar, with_settings
from deeptrack.synthetic import iter_scene
from deeptrack.types import PoolingMode, TrackOutput

README = Path(__file__).resolve().parents[1] / "README.md"

#: Side of the stand-in RoI maps: (N, D // 4, 2, 2) from the scene's D-dim appearance.
MAP_SIDE = 2


def _blocks(language: str) -> list[str]:
    """Return the README's fenced blocks opened with ```<language> (exactly), in order."""
    blocks: list[str] = []
    lines: list[str] = []
    inside: str | None = None  # the language of the open fence
    for line in README.read_text(encoding="utf-8").splitlines():
        if not line.startswith("```"):
            if inside == language:
                lines.append(line)
        elif inside is None:
            inside, lines = line[3:].strip(), []
        else:
            if inside == language:
                blocks.append("\n".join(lines) + "\n")
            inside = None
    return blocks


def _my_detector(video: dict):
    """Yield (boxes, scores, roi_maps) per frame of a synthetic scene, as a detector would.

    The maps carry each object's appearance (non-negative, as after a ReLU), so
    the head pools them into vectors that tell identities apart.
    """
    for frame in iter_scene(**video):
        n, d = frame.embeddings.shape
        maps = np.abs(frame.embeddings).reshape(n, d // MAP_SIDE**2, MAP_SIDE, MAP_SIDE)
        yield frame.boxes, frame.scores, maps


def _python_examples() -> list[str]:
    return _blocks("python")


def test_the_readme_has_python_examples():
    assert _python_examples(), "README.md has no ```python block"


@pytest.mark.parametrize("code", _python_examples(), ids=lambda c: c.splitlines()[0][:40])
def test_python_example_runs(code):
    video = {"n_objects": 4, "n_frames": 40, "seed": 0, "embedding_dim": 64}
    namespace = {"my_detector": _my_detector, "video": video, "__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    if "out" in namespace:  # the library example: it tracked, and output confirmed tracks
        assert isinstance(namespace["out"], TrackOutput)
        assert "tid" in namespace, "no track was ever output"


def _command_lines() -> list[str]:
    """Every ``deeptrack ...`` line of the README's plain blocks, continuations joined."""
    commands = []
    for block in _blocks(""):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("deeptrack "):
                commands.append(line)
    return commands


def _argv(line: str) -> list[str]:
    """The arguments of a README command line: comments dropped, ``[optional]`` kept."""
    words = shlex.split(line, comments=True)[1:]
    return [w.strip("[]") for w in words]


def test_the_readme_has_command_lines():
    commands = _command_lines()
    assert {c.split()[1] for c in commands} >= {"track", "eval", "compare", "demo"}


@pytest.mark.parametrize("line", _command_lines(), ids=lambda c: " ".join(c.split()[:2]))
def test_command_line_parses(line, capsys):
    try:
        args = build_parser().parse_args(_argv(line))
    except SystemExit as e:
        pytest.fail(f"README command does not parse ({e.code}): {line}\n{capsys.readouterr().err}")
    assert args.command == line.split()[1]


def _settings() -> list[str]:
    """Every ``--set KEY=VALUE`` of the README, in its command lines and its prose."""
    text = README.read_text(encoding="utf-8")
    found = set(re.findall(r"--set ([\w.]+=[^\s`\]]+)", text))
    return sorted(s for s in found if not s.partition("=")[0].isupper())  # not SECTION.KEY


@pytest.mark.parametrize("setting", _settings())
def test_set_examples_name_real_keys(setting):
    key, _, value = setting.partition("=")
    with_settings(RunConfig(), {key: parse_scalar(value)})  # raises on an unknown key


def test_pooling_examples_name_real_modes():
    for line in _command_lines():
        argv = _argv(line)
        if "--pooling" in argv:
            for mode in argv[argv.index("--pooling") + 1].split(","):
                if mode != MOTION_ONLY:
                    PoolingMode.parse(mode.partition(":")[0])
