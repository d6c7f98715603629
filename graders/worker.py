"""Scoring a submission within bounds: checks on the bytes before any parser sees them, and a
worker process with a time and memory limit for the parse and the metric.

A submission is untrusted input to the grader, which runs on the host: a 4.9 MB file whose header
has 500,000 columns took 184 s and 790 MB to parse. So:

- before parsing, :func:`shape_problem` refuses a header wider than ``max_columns`` fields and a
  line longer than ``max_line_bytes`` (reading only bytes, in linear time);
- a submission of ``worker_min_bytes`` or more is parsed and scored in a separate process
  (:func:`run_bounded`) with ``RLIMIT_AS`` at ``memory_mb`` and killed after ``timeout_s``; smaller
  ones, already bounded in size and width by the checks, are scored in the grader's own process
  so a normal grade costs no process start. The worker is forked from the grader's process, which
  has imported the metrics already (a warm start of a few milliseconds, no re-import of a script's
  ``__main__`` as ``spawn``/``forkserver`` need); it only parses, scores and exits.
  ``memory_mb`` is the room the worker may take on top of the address space it inherits.
  (Forking a threaded host is what ``multiprocessing`` does by default on Linux before Python
  3.14; should a lock held by another thread at the fork ever stall the worker, ``timeout_s``
  still ends it, as an invalid grade that says so.)

Every refusal is a reason for an invalid submission, never an exception out of the grader.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import resource
from pathlib import Path
from typing import Any

class Invalid(Exception):
    """The submission cannot be scored; ``str(exc)`` says why and what to change."""


def shape_problem(data: bytes, max_columns: int, max_line_bytes: int) -> str | None:
    """Why ``data`` is too wide or has too long a line to parse (None when it is fine)."""
    if len(data) > max_line_bytes:  # only then can a line be too long
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            end = len(data) if end < 0 else end
            if end - start > max_line_bytes:
                line = data.count(b"\n", 0, start) + 1
                return (f"line {line} of the submission is longer than max_line_bytes={max_line_bytes} "
                        f"({end - start} bytes): write one row per line")
            start = end + 1
    header = data.split(b"\n", 1)[0]
    if b'"' in header:  # quoted names may hold commas: count fields as the csv module does
        row = next(csv.reader(io.StringIO(header.decode("utf-8", errors="replace"))), [])
        width = len(row)
    else:
        width = header.count(b",") + 1
    if width > max_columns:
        return (f"the submission's header has {width} columns, more than max_columns={max_columns}: "
                f"write only the columns of the sample submission")
    return None


def score_csv(metric: str, data: bytes, answers_path: Path, target_columns: list[str], id_column: str,
              passthrough: list[str]) -> float:
    """Parse ``data`` as ``metric`` needs it and score it against the answers (raw value)."""
    import pandas as pd

    from .metrics import compute_score, read_csv_for

    try:
        sub = read_csv_for(metric, io.BytesIO(data))
    except pd.errors.EmptyDataError as exc:
        raise Invalid("submission file is empty (no header)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise Invalid(f"submission is not a readable CSV: {exc}") from exc
    if sub.empty:
        raise Invalid("submission has a header but no rows")
    answers = read_csv_for(metric, answers_path)
    try:
        return compute_score(metric, answers, sub, target_columns, id_column, passthrough)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc


def _address_space() -> int:
    """Bytes of virtual memory this process maps now (``/proc/self/statm``: pages)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _child(conn: Any, memory_mb: int, args: tuple) -> None:
    """Runs in the worker: cap the address space at what it inherited plus ``memory_mb``, score,
    send ("ok", raw) or ("invalid", why)."""
    limit = _address_space() + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        conn.send(("ok", score_csv(*args)))
    except Invalid as exc:
        conn.send(("invalid", str(exc)))
    except MemoryError:
        conn.send(("invalid", f"grading the submission needed more than the grader's memory_mb={memory_mb} "
                              f"(is it far larger or wider than the sample submission?)"))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as a reason
        conn.send(("invalid", f"grading failed: {type(exc).__name__}: {str(exc)[:500]}"))
    finally:
        conn.close()


def run_bounded(args: tuple, timeout_s: float, memory_mb: int) -> float:
    """:func:`score_csv` ``(*args)`` in a worker process limited to ``timeout_s`` seconds and
    ``memory_mb`` MiB of address space; :class:`Invalid` when it is refused, fails or is killed."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, memory_mb, args), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            raise Invalid(f"grading the submission took longer than the grader's timeout_s={timeout_s:g}: "
                          f"write a submission shaped like the sample submission")
        try:
            status, value = parent.recv()
        except EOFError:
            proc.join(5)
            raise Invalid(f"the grading worker died (exit {proc.exitcode}); the submission may need more "
                          f"than memory_mb={memory_mb}") from None
    finally:
        parent.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    if status != "ok":
        raise Invalid(value)
    return float(value)

