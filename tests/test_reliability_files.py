"""The host's safe file primitive (sandboxes/files.py): a session file is opened once, without
following links, and checked through that descriptor; writes replace planted links."""

from __future__ import annotations

import os
import time

import pytest

from sandmle.sandboxes.files import (
    SandboxPathError, open_regular, read_regular, safe_submission, write_regular,
)

ANSWERS = b"id,y\n1,SECRET-ANSWER\n"


@pytest.fixture
def layout(tmp_path):
    """A session folder beside a 'hidden' answers file the agent may link to."""
    work = tmp_path / "work"
    work.mkdir()
    answers = tmp_path / "answers.csv"
    answers.write_bytes(ANSWERS)
    (work / "submission.csv").write_bytes(b"id,y\n1,0\n")
    return work, answers


_SWAP = """
import os, sys
work, answers = sys.argv[1], sys.argv[2]
sub, lnk, real = work + '/submission.csv', work + '/tmp.lnk', work + '/real.tmp'
print('ready', flush=True)
while True:
    try:
        os.symlink(answers, lnk)
        os.replace(lnk, sub)
        with open(real, 'wb') as f:
            f.write(b'id,y' + bytes([10]) + b'1,0' + bytes([10]))
        os.replace(real, sub)
    except OSError:
        pass
"""


def _start_swapper(work, answers):
    """Agent code of the issue's attack, in its own process (so it really runs in parallel):
    flips submission.csv between a file and a link to the answers as fast as it can."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _SWAP, str(work), str(answers)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    return proc


def test_a_regular_file_reads(layout):
    work, _ = layout
    assert read_regular(work, "submission.csv") == b"id,y\n1,0\n"
    assert safe_submission(work) == work / "submission.csv"


@pytest.mark.parametrize("how", ["final", "folder", "dotdot", "absolute"])
def test_links_and_escapes_are_refused(layout, how):
    work, answers = layout
    if how == "final":
        (work / "submission.csv").unlink()
        (work / "submission.csv").symlink_to(answers)
        rel = "submission.csv"
    elif how == "folder":
        (work / "sub").symlink_to(answers.parent)
        rel = "sub/answers.csv"
    elif how == "dotdot":
        rel = "../answers.csv"
    else:
        rel = str(answers)
    with pytest.raises(SandboxPathError):
        read_regular(work, rel)
    assert safe_submission(work, rel) is None


def test_fifo_and_hard_link_are_refused_without_blocking(layout):
    work, answers = layout
    os.mkfifo(work / "pipe.csv")
    os.link(answers, work / "hard.csv")
    for name in ("pipe.csv", "hard.csv"):
        with pytest.raises(SandboxPathError):
            read_regular(work, name)


def test_the_descriptor_keeps_the_file_it_checked(layout):
    """Once opened, swapping the name for a link to the answers changes nothing for the reader."""
    work, answers = layout
    with open_regular(work, "submission.csv") as fh:
        (work / "submission.csv").unlink()
        (work / "submission.csv").symlink_to(answers)
        assert fh.read() == b"id,y\n1,0\n"


def test_a_racing_swapper_never_gets_the_answers_read(layout):
    """Agent code flips submission.csv between a file and a link to the answers as fast as it can
    (the issue's stateful-session attack); the host reads it thousands of times meanwhile."""
    work, answers = layout
    swapper = _start_swapper(work, answers)
    reads = refused = 0
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                data = read_regular(work, "submission.csv")
            except (SandboxPathError, FileNotFoundError):
                refused += 1
                continue
            reads += 1
            assert b"SECRET" not in data
    finally:
        swapper.kill()
        swapper.wait()
    assert reads and refused, (reads, refused)  # both outcomes happened: the race was real


def test_write_replaces_a_planted_link_instead_of_writing_through(layout):
    work, answers = layout
    (work / "submission.csv").unlink()
    (work / "submission.csv").symlink_to(answers)
    write_regular(work, "submission.csv", b"id,y\n1,1\n")
    assert answers.read_bytes() == ANSWERS
    assert not (work / "submission.csv").is_symlink()
    assert (work / "submission.csv").read_bytes() == b"id,y\n1,1\n"
    write_regular(work, "deep/er/file.txt", "x")
    assert (work / "deep/er/file.txt").read_text() == "x"
    (work / "out").symlink_to(answers.parent)
    with pytest.raises(SandboxPathError):
        write_regular(work, "out/answers.csv", b"overwritten")
    assert answers.read_bytes() == ANSWERS
    assert not [p for p in work.iterdir() if p.name.startswith(".sandmle-write-")]


def test_best_submission_copy_never_keeps_or_restores_the_answers(layout, tmp_path):
    """AIDE's and MLE-Dojo's best-submission copy (scaffolds/plumbing.py) under the swap race:
    the kept bytes are never the answers, and restoring writes a file, not through a link."""
    from types import SimpleNamespace

    from sandmle.core.interfaces import ScaffoldLimits
    from sandmle.sandboxes.conformance import make_canary_task
    from sandmle.scaffolds.plumbing import Episode

    work, answers = layout
    task = make_canary_task(tmp_path / "task")
    ep = Episode(task, SimpleNamespace(name="none"), SimpleNamespace(workdir=work, file_owner=None),
                 ScaffoldLimits(), scaffold="test")
    swapper = _start_swapper(work, answers)
    try:
        kept, deadline = 0, time.monotonic() + 3.0
        while time.monotonic() < deadline:  # ~16 answer reads in 5 s without the fix
            kept += ep.offer_submission(float(kept + 1))
            assert ep._best is None or b"SECRET" not in ep._best[1]
    finally:
        swapper.kill()
        swapper.wait()
    assert kept and ep._best is not None and b"SECRET" not in ep._best[1]
    (work / "submission.csv").unlink()
    (work / "submission.csv").symlink_to(answers)
    ep.restore_best_submission()
    assert answers.read_bytes() == ANSWERS
    assert (work / "submission.csv").read_bytes() == b"id,y\n1,0\n"
