"""Box conversions and the package's import-time promises."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deeptrack.boxes import (
    iou_matrix,
    tlwh_to_xyxy,
    validate_xyxy,
    xyah_to_xyxy,
    xyxy_to_tlwh,
    xyxy_to_xyah,
)
from deeptrack.errors import InputError

coords = st.floats(-1000, 1000, allow_nan=False)
sizes = st.floats(0.5, 500, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(x=coords, y=coords, w=sizes, h=sizes)
def test_conversions_round_trip(x, y, w, h):
    xyxy = tlwh_to_xyxy([[x, y, w, h]])
    np.testing.assert_allclose(xyxy_to_tlwh(xyxy), [[x, y, w, h]], rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(xyah_to_xyxy(xyxy_to_xyah(xyxy)), xyxy, rtol=1e-9, atol=1e-7)


def test_xyah_hand_computed():
    np.testing.assert_allclose(xyxy_to_xyah([[0, 0, 10, 20]]), [[5, 10, 0.5, 20]])


def test_iou_hand_computed():
    a = [[0, 0, 10, 10], [0, 0, 2, 2]]
    b = [[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 30]]
    np.testing.assert_allclose(iou_matrix(a, b), [[1, 25 / 175, 0], [0.04, 0, 0]])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_validate_names_the_row():
    with pytest.raises(InputError, match=r"boxes\[1\]"):
        validate_xyxy([[0, 0, 1, 1], [0, 0, -1, 1]])


def test_import_does_not_import_torch():
    code = "import sys, deeptrack; deeptrack.Tracker; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_console_script_version_and_help():
    from deeptrack import __version__
    from deeptrack.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert main([]) == 0
    assert __version__.count(".") == 2
