"""Reading a submission file safely: one ``open`` with ``O_NOFOLLOW``, checks on that descriptor.

A submission is untrusted: agent code may leave ``submission.csv`` as a symlink to the hidden
answers, a FIFO that blocks a reader forever, a device, or swap the path between checks. So the
file is opened once (``O_NOFOLLOW`` refuses a symlink as the last path component, ``O_NONBLOCK``
keeps a FIFO from blocking the open), ``fstat`` on the descriptor must say "regular file", and
the bytes are read from that same descriptor, never from the path again.

MLE-bench grades only files whose name ends in ``.csv`` (``mlebench/grade.py:62``, ``:107``).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class SubmissionRefused(Exception):
    """The submission cannot be graded; ``str(exc)`` says why and what to change.

    ``exists`` tells whether a regular CSV file was found (MLE-bench's ``submission_exists``)."""

    def __init__(self, reason: str, exists: bool = False):
        super().__init__(reason)
        self.exists = exists


def read_submission(path: Path | str | None, max_bytes: int) -> bytes:
    """The bytes of the submission at ``path`` (see the module docstring for what is refused)."""
    if path is None:
        raise SubmissionRefused("no submission file was produced")
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise SubmissionRefused(f"submission {path.name} is not a .csv file: write the predictions as CSV "
                                f"to a file named like submission.csv (MLE-bench grades only .csv files)")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SubmissionRefused(f"submission file not found: {path.name}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SubmissionRefused(f"submission {path.name} is a symbolic link: write the CSV file itself "
                                    f"at that path (links are never followed)") from None
        raise SubmissionRefused(f"cannot open submission {path.name}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise SubmissionRefused(f"submission {path.name} is {kind}: write a regular CSV file")
        if info.st_size == 0:
            raise SubmissionRefused("submission file is empty", exists=True)
        if info.st_size > max_bytes:
            raise SubmissionRefused(f"submission file is too large ({info.st_size} bytes > {max_bytes})", exists=True)
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > max_bytes:  # the file grew after fstat
                raise SubmissionRefused(f"submission file is too large (over {max_bytes} bytes)", exists=True)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
