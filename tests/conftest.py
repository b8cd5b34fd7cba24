"""Shared fixtures: where the real data and weights are, and skips when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _resource(env: str, default: Path) -> Path | None:
    value = os.environ.get(env)
    path = Path(value) if value else default
    return path if path.exists() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The MOTChallenge data root (DEEPTRACK_DATA, else ../shared/data); skip if absent."""
    path = _resource("DEEPTRACK_DATA", REPO.parent / "shared" / "data")
    if path is None:
        pytest.skip("real MOTChallenge data not found: set DEEPTRACK_DATA")
    return path


@pytest.fixture(scope="session")
def weights_root() -> Path:
    """The pretrained weights folder (DEEPTRACK_WEIGHTS, else ../shared/weights); skip if absent."""
    path = _resource("DEEPTRACK_WEIGHTS", REPO.parent / "shared" / "weights")
    if path is None:
        pytest.skip("pretrained weights not found: set DEEPTRACK_WEIGHTS")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work on one thread (tiny test images share 2 cores better); restore."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def split(tmp_path) -> Path:
    """A split folder of two tiny sequences (SEQ-01, SEQ-02) for the command-line tests."""
    from cli_support import make_sequence

    root = tmp_path / "train"
    make_sequence(root, "SEQ-01")
    make_sequence(root, "SEQ-02", seed=1)
    return root
