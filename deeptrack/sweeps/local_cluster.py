"""A Ray cluster of several nodes on this machine, on loopback addresses only.

For rehearsing ``--ray-address`` without a cluster (the tests and
``benchmarks/sweep_scaling.py`` use it): a head started with ``ray start --head``
and more nodes with ``ray start --address``, each a separate raylet with its own
object store, so tasks and RoI maps really cross between nodes.

Every node listens on its own loopback address (127.0.0.2, 127.0.0.3, ...):
Ray rewrites ``127.0.0.1`` into the machine's network address, not the other
loopback addresses. Each node runs ``ray start --block`` in a process group of
its own, which :meth:`LocalCluster.stop` ends by that group's id (nothing else
on the machine is touched), and a temporary folder of its own holds Ray's
sockets and logs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

from deeptrack.errors import DeepTrackError

__all__ = ["LocalCluster"]

#: Loopback address of the head; node k listens on 127.0.0.(2 + k).
HEAD_IP = "127.0.0.2"


class LocalCluster:
    """Start ``nodes`` Ray nodes here (a head and ``nodes - 1`` workers); stop them all after.

    Args:
        nodes: how many nodes (>= 1).
        cpus_per_node: CPUs each node offers to tasks.
        object_store_bytes: each node's object store.
        env: extra environment variables for the nodes (and so their workers),
            e.g. ``PYTHONPATH`` for task modules outside the installed packages.
        start_timeout: seconds to wait for each node.

    Use as a context manager; :attr:`address` is what ``--ray-address`` takes.
    """

    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, *,
                 object_store_bytes: int = 256 << 20, env: dict[str, str] | None = None,
                 start_timeout: float = 60.0) -> None:
        if nodes < 1:
            raise ValueError(f"nodes = {nodes}: expected >= 1")
        self.nodes, self.cpus_per_node = nodes, cpus_per_node
        self.object_store_bytes = object_store_bytes
        # not the address of a Ray instance this process may have started
        self.env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        self.env.update({"RAY_AUTH_MODE": "token", **(env or {})})
        self.start_timeout = start_timeout
        self.address = ""
        self._procs: list[subprocess.Popen] = []
        self._tmp: Path | None = None

    def _ray(self) -> str:
        exe = Path(sys.executable).with_name("ray")
        return str(exe) if exe.exists() else "ray"

    def _start_node(self, k: int, args: list[str]) -> None:
        log = Path(str(self._tmp)) / f"node{k}.log"
        cmd = [self._ray(), "start", *args, f"--node-ip-address=127.0.0.{2 + k}",
               f"--num-cpus={self.cpus_per_node}", f"--object-store-memory={self.object_store_bytes}",
               "--disable-usage-stats", f"--temp-dir={self._tmp}", "--block"]
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self._procs.append(proc)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if "Ray runtime started" in log.read_text(errors="replace"):
                return
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise DeepTrackError(f"Ray node {k} did not start: " + " | ".join(tail))

    def start(self) -> str:
        """Start the nodes; return the cluster's address (``127.0.0.2:PORT``).

        The nodes require Ray's authentication token (``~/.ray/auth_token``,
        made by ``ray get-auth-token --generate`` when missing), as a local
        ``ray.init`` does; a driver of the same user finds it there.
        """
        subprocess.run([self._ray(), "get-auth-token", "--generate"], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # a short folder: Ray's socket paths must fit in 107 bytes
        self._tmp = Path(tempfile.mkdtemp(prefix="dtray-", dir="/tmp"))
        with socket.socket() as s:
            s.bind((HEAD_IP, 0))
            port = s.getsockname()[1]
        self.address = f"{HEAD_IP}:{port}"
        try:
            self._start_node(0, ["--head", f"--port={port}", "--include-dashboard=false"])
            for k in range(1, self.nodes):
                self._start_node(k, [f"--address={self.address}"])
        except BaseException:
            self.stop()
            raise
        return self.address

    def connect_kwargs(self) -> dict[str, str]:
        """Arguments of ``ray.init`` for a driver on this machine."""
        return {"address": self.address, "_node_ip_address": HEAD_IP}

    def stop(self) -> None:
        """End every node's process group (gracefully, then by force) and remove the folder."""
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        for proc in self._procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):  # raylet, GCS and workers share the group
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self._procs.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

