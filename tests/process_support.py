"""The host's view of processes, read from /proc, for the tests that check a sandbox's processes
are gone (a session's daemonised ``sleep``, every process of a shut-down sandbox)."""

from __future__ import annotations

from pathlib import Path


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command name) of every process now visible in /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended while the table was read
            name = stat[stat.index("(") + 1:stat.rindex(")")]  # may hold spaces and parentheses
            table[int(entry.name)] = (int(stat[stat.rindex(")") + 2:].split()[1]), name)
    return table


def descendants(root: int, table: dict[int, tuple[int, str]] | None = None) -> set[int]:
    """Every process below ``root`` (children, their children, ...), from ``table`` or a fresh one."""
    children: dict[int, set[int]] = {}
    for pid, (parent, _name) in (process_table() if table is None else table).items():
        children.setdefault(parent, set()).add(pid)
    found, frontier = set(), {root}
    while frontier:
        frontier = set().union(*(children.get(p, set()) for p in frontier)) - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (killed, waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
