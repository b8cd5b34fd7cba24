"""Run a backbone trunk in ONNX Runtime on the CPU (``AppearanceConfig.runtime: onnxruntime``).

The trunk is exported once, in memory, with dynamic batch, height and width;
sessions are made lazily, one per torch intra-op thread count in force when
the trunk is called, so ``torch.set_num_threads`` governs both runtimes alike.
Only the trunk moves: resizing, normalisation, RoIAlign, pooling and any
per-RoI head stay in torch, so the two runtimes differ only by the trunk's
float rounding (tests/test_ort_runtime.py: within 1e-4 of the maps' largest value).

On this project's 2-core CPU, MobileNetV2 RoI features at 960x540 ran at 2.1x
(2 threads) to 2.7x (1 thread) the frames/s of channels-last torch
(benchmarks/results/bench_roi_fps.md).
"""

from __future__ import annotations

import importlib
import io
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptrack.errors import ConfigError

__all__ = ["OnnxRuntimeTrunk", "require_onnxruntime"]


def require_onnxruntime() -> Any:
    """Return the ``onnxruntime`` module, or raise a ``ConfigError`` saying how to get it.

    torch's exporter needs the ``onnx`` package as well; both are checked here.
    """
    missing = []
    for name in ("onnx", "onnxruntime"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"config key 'runtime' = 'onnxruntime' needs the {' and '.join(missing)} "
                          f"package{'s' if len(missing) > 1 else ''}: pip install "
                          f"{' '.join(missing)} (or deeptrack[onnx]); or use runtime: torch")
    return module


class OnnxRuntimeTrunk(nn.Module):
    """A trunk (``(B, 3, H, W) -> (B, C, h, w)``) run by ONNX Runtime instead of torch.

    Args:
        trunk: the torch module, in eval mode with its weights loaded (and,
            for OSNet, BatchNorm already folded).
        example_size: (height, width) of the example input the export traces;
            any size works afterwards.

    Raises:
        ConfigError: onnxruntime is not installed.
    """

    def __init__(self, trunk: nn.Module, example_size: tuple[int, int] = (256, 128)) -> None:
        super().__init__()
        self._ort = require_onnxruntime()
        trunk = trunk.eval()
        example = torch.zeros(1, 3, *example_size)
        buf = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of dynamo, which
            # needs onnxscript; this one needs only torch.
            warnings.simplefilter("ignore")
            torch.onnx.export(trunk, (example,), buf, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "b", 2: "h", 3: "w"},
                                            "y": {0: "b", 2: "h2", 3: "w2"}},
                              opset_version=17, dynamo=False)
        self._model = buf.getvalue()
        self._sessions: dict[int, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Sessions do not pickle; they are rebuilt from the model bytes on use.
        state = self.__dict__.copy()
        state["_sessions"] = {}
        state["_ort"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._ort = require_onnxruntime()

    def _session(self) -> Any:
        threads = torch.get_num_threads()
        sess = self._sessions.get(threads)
        if sess is None:
            ort = self._ort
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Spinning worker threads would take the cores the tracker and
            # other jobs need between forwards.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sess = ort.InferenceSession(self._model, opts, providers=["CPUExecutionProvider"])
            self._sessions[threads] = sess
        return sess

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dtype != torch.float32:
            raise ConfigError(f"runtime 'onnxruntime' runs float32 on the CPU; got a "
                              f"{x.dtype} tensor on {x.device} (use runtime: torch there)")
        arr = np.ascontiguousarray(x.detach().numpy())
        (out,) = self._session().run(None, {"x": arr})
        return torch.from_numpy(out)
