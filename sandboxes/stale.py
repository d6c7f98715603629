"""Sandbox folders whose owner process is gone (a ``kill -9`` leaves them behind), found and
removed when the next sandbox starts.

Every sandbox folder holds ``.owner.json``: the owner's pid, its start time (so a reused pid is
not mistaken for the owner), the boot id and the host name. A folder is stale when its owner is
not running on this machine any more; folders of live owners, of other machines sharing the
temporary folder, and folders without a record (made by older versions) are left alone.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from .tree import remove_tree
from .workspace_fs import unmount_below

#: Name prefix of every local sandbox's session folder under the temporary folder.
BASE_PREFIX = "sandmle-sandbox-"

log = logging.getLogger(__name__)
OWNER_FILE = ".owner.json"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (None: no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        return int(stat.rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner_record(pid: int | None = None) -> dict[str, Any]:
    """Who owns a folder made now: this process (or ``pid``)."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "start": _start_time(pid), "boot": _boot_id(), "host": socket.gethostname()}


def owner_alive(record: dict[str, Any]) -> bool:
    """False only when the recorded owner is certainly gone from this machine."""
    if record.get("host") != socket.gethostname():
        return True  # another machine's folder (a shared temporary folder): not ours to judge
    if record.get("boot") != _boot_id():
        return False
    pid = record.get("pid")
    return isinstance(pid, int) and _start_time(pid) == record.get("start")


def make_owned_dir(prefix: str) -> Path:
    """A new temporary folder ``<tmp>/<prefix><pid>-<random>`` recording this process as owner."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    (path / OWNER_FILE).write_text(json.dumps(owner_record()), encoding="utf-8")
    return path


def read_owner(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((path / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def remove_stale_dirs(prefix: str) -> list[Path]:
    """Remove ``<tmp>/<prefix>*`` folders whose recorded owner is gone; return them."""
    removed = []
    try:
        candidates = list(Path(tempfile.gettempdir()).glob(prefix + "*"))
    except OSError as exc:
        log.warning("cannot list the temporary folder for stale sandbox folders: %s", exc)
        return removed
    for path in candidates:
        try:
            if path.is_symlink() or not path.is_dir():
                continue
            record = read_owner(path)
            if record is None or owner_alive(record):
                continue
        except OSError:
            continue
        # Never raises, however deep agent code nested its folders: a folder that cannot be
        # removed is reported and left, and never stops a new sandbox from starting.
        unmount_below(path)  # a killed run's workspace file systems
        if remove_tree(path):
            removed.append(path)
        else:
            log.warning("could not remove the stale sandbox folder %s entirely", path)
    if removed:
        log.info("removed %d stale sandbox folder(s) left by killed runs", len(removed))
    return removed
