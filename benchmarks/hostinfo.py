"""What machine a benchmark ran on, for the header of its results (shared by the benchmarks).

Imported as ``from hostinfo import ...``: a benchmark runs as ``python benchmarks/<name>.py``,
which puts this folder first on ``sys.path``.
"""

from __future__ import annotations

import os
import platform
import subprocess


def cpu_model() -> str:
    """Return the CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def uptime() -> str:
    """Return ``uptime``'s line (the load averages), or the load averages alone."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())
