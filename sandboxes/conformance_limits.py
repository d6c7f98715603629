"""Battery checks of the resource limits agent code tried to get around (issue 26): folders
nested past the host's recursion and path limits, disk space held by unlinked files, memory
spread over many forked processes, a CPU-time kill reported as such, and the kernel surface
(user namespaces, the keyring, mount, ptrace) closed to agent code.

Registered by importing this module (``sandboxes/conformance.py`` does, last).
"""

from __future__ import annotations

import uuid

from sandmle.core.interfaces import Sandbox
from sandmle.core.task import Task
from sandmle.core.testing import check

from .conformance import _assert_healthy, _assert_no_leak, _session, _text

# 2,500 levels: past Python's recursion limit (1,000) and, with 2-byte names, past PATH_MAX.
_NEST = ("import os\nfor _ in range(2500):\n  os.mkdir('nest')\n  os.chdir('nest')\n"
         "open('deep.txt', 'w').write('bottom')\nprint('nested')")


@check("sandboxes")
async def deep_nesting(sandbox: Sandbox, task: Task) -> None:
    """Folders nested 2,500 deep neither crash list_files nor close(), and are removed."""
    session = await sandbox.open(task)
    workdir = session.workdir
    try:
        r = await session.exec(_NEST, timeout=120)
        assert r.ok and "nested" in r.stdout_tail, f"nesting step failed: {r}"
        files = await session.list_files()
        deep = [f for f in files if f.endswith("/deep.txt")]
        assert deep and deep[0].count("nest/") == 2500, f"deep file not listed: {files[:5]}"
        await _assert_healthy(session)
    finally:
        await session.close()
    assert not workdir.exists(), f"session directory left behind: {workdir}"


__all__ = ["deep_nesting"]
_ = (uuid, _assert_no_leak, _text)
