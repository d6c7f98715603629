"""Kernel interfaces of the zygote (see :mod:`zygote_main`; stdlib only, runs inside the sandbox):
libc mount/prctl/unshare, each session's file system view, resource limits, the process tree,
and the measurements a session takes of agent code from the kernel's own accounts (wait status
and rusage, /proc, statvfs), which agent code cannot forge.
"""

import ctypes
import os
import resource
import signal

if __package__:  # imported as part of sandmle; joined into one program otherwise
    from .tree import tree_usage

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x08000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE, MNT_DETACH = 4096, 8192, 16384, 1 << 18, 2
MIB = 1024 * 1024
_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def _mount(source, target, fstype=None, flags=0, data=None):
    _check(_libc.mount(source.encode() if source else None, target.encode(),
                       fstype.encode() if fstype else None, flags, data.encode() if data else None),
           "mount %s" % target)


def _umount(path):
    _check(_libc.umount2(path.encode(), MNT_DETACH), "umount %s" % path)


def _prctl(option, value):
    _check(_libc.prctl(option, value, 0, 0, 0), "prctl %d" % option)


def _set_subreaper():
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError:  # best effort; without it only the process group is killed
        pass


# RLIMIT_CPU's hard limit lies this far above its soft one: the kernel sends SIGXCPU at the soft
# limit (an unmistakable "CPU time" verdict) and SIGKILL only at the hard one. With hard = soft
# it sends SIGKILL alone, which reads like the out-of-memory killer.
CPU_GRACE_S = 1


def _apply_rlimits(limits):
    """Limits for agent code; set in the child before it runs anything. Every hard limit equals
    its soft limit, so agent code can lower a limit but never raise one back up (RLIMIT_CPU:
    by at most :data:`CPU_GRACE_S`)."""
    cpu = limits.get("cpu_s")
    pairs = [
        (resource.RLIMIT_AS, limits.get("memory_mb"), MIB, 0),
        (resource.RLIMIT_CPU, cpu, 1, CPU_GRACE_S),
        (resource.RLIMIT_NPROC, limits.get("max_procs"), 1, 0),
        (resource.RLIMIT_FSIZE, limits.get("max_file_mb"), MIB, 0),
        (resource.RLIMIT_CORE, 0, 1, 0),
    ]
    for what, value, unit, grace in pairs:
        if value is None:
            continue
        try:
            resource.setrlimit(what, (int(value * unit), int(value * unit) + grace))
        except (ValueError, OSError):
            pass
    for name in dir(resource):
        if name.startswith("RLIMIT_") and not (name == "RLIMIT_CPU" and cpu):
            what = getattr(resource, name)
            try:
                soft, hard = resource.getrlimit(what)
                if soft != hard:
                    resource.setrlimit(what, (soft, soft))
            except (ValueError, OSError):
                pass


def _set_limit(pid, what, value, grace=0):
    """Set ``pid``'s limit ``what`` to ``value`` (hard = soft + ``grace``); False when not permitted."""
    try:
        resource.prlimit(pid, what, (value, value + grace))
        return True
    except (ValueError, OSError):
        return False


def _descendants(root):
    """Pids whose parent chain reaches ``root`` (read from /proc)."""
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as fh:
                stat = fh.read()
            parents[int(name)] = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in found}
        found |= frontier
    return found


def _kill_descendants(keep=()):
    """SIGKILL everything below this process except ``keep``, rescanning until no new pid
    shows up (a fork bomb keeps spawning); pids already signalled are not waited for."""
    signalled = set()
    for _ in range(200):
        fresh = _descendants(os.getpid()) - set(keep) - signalled
        if not fresh:
            break
        for pid in fresh:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        signalled |= fresh
    _reap()


def _reap(keep=()):
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _dir_usage(path, byte_cap, entry_cap):
    """(bytes in blocks, entries) under ``path`` until either passes its cap, at any depth
    (descriptor-relative: a folder nested past PATH_MAX is counted, not skipped)."""
    return tree_usage(path, byte_cap, entry_cap)


def _fs_usage(path):
    """(bytes, inodes) in use on the file system holding ``path`` (a session's own tmpfs)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0, 0
    return (st.f_blocks - st.f_bfree) * st.f_frsize, max(st.f_files - st.f_ffree - 1, 0)


def _fs_full(path):
    """What is exhausted on the file system holding ``path`` ("space", "files"), or ''."""
    try:
        st = os.statvfs(path)
    except OSError:
        return ""
    if st.f_ffree == 0:
        return "files"
    if st.f_bavail * st.f_frsize < MIB:
        return "space"
    return ""


def _used_bytes(path):
    """Bytes in use on the file system holding ``path`` (the session's scratch tmpfs)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _proportional_memory(pids):
    """Resident memory of ``pids``, shared pages split among their sharers (PSS), in bytes."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid, "rb") as fh:
                for line in fh:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            continue
    return total


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid):
    """CPU time of ``pid`` (all its threads and the children it reaped), read from /proc: the
    kernel's account, which agent code inside ``pid`` cannot forge."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / _TICKS  # utime stime cutime cstime
    except (OSError, ValueError, IndexError):
        return None


def _peak_rss_mb(pid):
    """Peak resident memory of ``pid`` since its last reset (VmHWM), in MiB."""
    try:
        with open("/proc/%d/status" % pid, "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _reset_peak_rss(pid):
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def _read(fd):
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def _drain(fd, tail):
    """Read what ``fd`` holds now without waiting (into ``tail``, or discarded when None)."""
    os.set_blocking(fd, False)
    while True:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            break
        if not data:
            break
        if tail is not None:
            if tail.total > 64 * MIB:
                break
            tail.add(data)
    if tail is None:
        os.set_blocking(fd, True)


class Tail:
    """Keeps the last ``keep`` bytes of a stream and counts all of them."""

    def __init__(self, keep):
        self.keep, self.buf, self.total = keep, bytearray(), 0

    def add(self, data):
        self.total += len(data)
        self.buf += data
        if len(self.buf) > 2 * self.keep:
            del self.buf[:-self.keep]

    def text(self):
        return bytes(self.buf[-self.keep:]).decode("utf-8", "replace")


def _isolate(cfg, name):
    """In a fresh session child: own namespaces and a file system view of only its directory.

    The sandbox's base folder leaves this namespace once the session's own folder is bound at
    /workspace (other sessions' folders are not covered but gone, and so is the host path of
    the base folder from /proc/self/mountinfo). /tmp and /dev/shm are two folders of one private
    tmpfs sized by ``memory_mb`` with an inode cap: their files are memory and count against it.
    """
    root, workdir = cfg["sessions_root"], cfg["workdir"]
    memory = cfg["limits"].get("memory_mb") or cfg.get("disk_limit_mb", 1024)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET), "unshare")
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    _mount(os.path.join(root, name), workdir, None, MS_BIND | MS_REC)
    _umount(root)
    # The scratch tmpfs is set up where the sessions' folder was, then reached only via its binds.
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV,
           "size=%dm,nr_inodes=%d,mode=0755" % (memory, int(cfg.get("max_files") or 100000)))
    keep, stash = cfg.get("keep_visible", []), os.path.join(root, ".stash")
    for target, sub in (("/tmp", "tmp"), ("/dev/shm", "shm")):
        if os.path.isdir(target):
            os.mkdir(os.path.join(root, sub), 0o1777)
            os.chmod(os.path.join(root, sub), 0o1777)
            _private_scratch(target, os.path.join(root, sub), keep, stash)
    _umount(root)


def _private_scratch(target, source, keep, stash):
    """Replace ``target`` by a bind of ``source``, leaving the read-only mounts in ``keep`` that
    lie below it visible at their paths (a Python installed under /tmp, e.g. a CI checkout's
    virtualenv, must stay importable); the covered mount is removed, not just hidden."""
    below = [k for k in keep if k.startswith(target.rstrip("/") + "/")]
    if below:  # reach the old tree through a stash mount once it is gone from ``target``
        os.mkdir(stash)
        _mount(target, stash, None, MS_BIND | MS_REC)
    if os.path.ismount(target):
        _umount(target)
    _mount(source, target, None, MS_BIND)
    for path in below:
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(stash + path[len(target):], path, None, MS_BIND | MS_REC)
        if not os.statvfs(path).f_flag & os.ST_RDONLY:
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    if below:
        _umount(stash)
        os.rmdir(stash)
