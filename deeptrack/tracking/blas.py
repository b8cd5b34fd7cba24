"""A cheap, reusable limit on the BLAS libraries' threads around the tracker's update.

The per-frame products are small, so BLAS thread hand-offs cost more than
they save: on 2 shared cores one thread made ``update()`` 2-6x faster
(``TrackerConfig.blas_threads``; benchmarks/bench_association.py).
"""

from __future__ import annotations

import contextlib
from typing import Any


class BlasThreadLimit:
    """Limit the loaded BLAS libraries to ``threads`` threads inside the block, then restore.

    threadpoolctl's ``limit()`` took ~25 us per call here (it re-reads every
    library's settings); this finds the library handles once, on first use
    (~0.4 ms), and per block only reads and sets their thread counts (~3 us).
    Libraries loaded after the first use are not limited. A copy or unpickled
    instance finds the handles again (they are pointers into this process).

    Args:
        threads: BLAS threads inside the block, >= 1.
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._libs: list[Any] | None = None
        self._previous: list[int | None] = []

    def __getstate__(self) -> dict[str, Any]:
        return {"threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["threads"])  # type: ignore[misc]

    def __enter__(self) -> None:
        if self._libs is None:
            from threadpoolctl import ThreadpoolController

            self._libs = [c for c in ThreadpoolController().lib_controllers
                          if c.user_api == "blas"]
        self._previous = [lib.get_num_threads() for lib in self._libs]
        for lib, n in zip(self._libs, self._previous):
            if n is not None and n != self.threads:  # None: the library cannot say
                lib.set_num_threads(self.threads)

    def __exit__(self, *exc: object) -> None:
        for lib, n in zip(self._libs or (), self._previous):
            if n is not None and n != self.threads:
                lib.set_num_threads(n)


def blas_thread_limit(threads: int | None) -> contextlib.AbstractContextManager[None]:
    """Return a reusable context that limits BLAS to ``threads`` threads (None: leaves it alone)."""
    return contextlib.nullcontext() if threads is None else BlasThreadLimit(threads)
