"""The process's CPU cores, shared by every CPU engine (``ctranslate2``, ``openvino``)."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any


class CoreBudget:
    """The process's CPU cores, shared by every CPU engine: a batch holds as many as its worker
    has threads. Two policies of one evaluation (base and SFT) each run OpenMP pools; generating
    at once beyond the cores, they oversubscribe them, and OpenMP's barriers collapse under that
    (measured on the 2-core machine: far slower than taking turns)."""

    def __init__(self, cores: int):
        self.cores, self.free = cores, cores
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, n: int) -> Any:
        """Hold ``n`` cores (at most all of them) while the block runs; waits until they are free."""
        n = min(max(n, 1), self.cores)
        with self._cond:
            self._cond.wait_for(lambda: self.free >= n)
            self.free -= n
        try:
            yield
        finally:
            with self._cond:
                self.free += n
                self._cond.notify_all()


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


#: The one budget of this process.
CORES = CoreBudget(cpu_count())
