"""The zygote: the only sandmle code that runs *inside* a sandbox.

It is stdlib-only and never imports ``sandmle`` (the package is not visible inside the
sandbox): the host reads this file and passes its source to ``python -c``.

Two levels of fork, so that neither interpreter start nor imports are ever paid on the hot path:

* the **mother** is started once per sandbox (inside one bwrap with the sandbox's base directory
  bound at ``/sessions``), imports the preload modules, and then only forks sessions. The host
  talks to it over a ``SOCK_SEQPACKET`` socket on stdin: ``spawn`` messages carry the two pipe
  fds of the new session (SCM_RIGHTS), ``kill`` messages end one.
* a **session** is a fork of the mother that enters fresh mount, pid, ipc and network
  namespaces, bind-mounts its own directory at ``/workspace``, covers ``/sessions`` (so other
  sessions are invisible), ``/tmp`` and ``/dev/shm`` with private size-capped tmpfs, mounts its
  own ``/proc``, and serves one JSON request per line on its pipe. Without bwrap
  (``isolation="none"``) a session is a plain fork that works in its host directory.
* every **execution** is a child forked from the session. It gets its own session id, rlimits,
  fresh stdout/stderr pipes and only those fds, ``no_new_privs``, and (when the host runs as
  root) its own unprivileged uid, so ``RLIMIT_NPROC`` bounds a fork bomb per session and agent
  code can neither signal nor trace the session process that reports its results. The session
  enforces the timeout, output and disk caps and afterwards kills every descendant (it is a
  child subreaper, or pid 1 of its namespace). In stateful mode one long-lived child (the
  "kernel") runs every step in the same globals; a step that kills it gets a fresh fork.
"""

import ctypes
import json
import os
import resource
import select
import signal
import socket
import sys
import time
import traceback

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x08000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 4096, 16384, 1 << 18, 2
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


def _prctl(option, value):
    _check(_libc.prctl(option, value, 0, 0, 0), "prctl %d" % option)


def _set_subreaper():
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError:  # best effort; without it only the process group is killed
        pass


def _apply_rlimits(limits):
    """Limits for agent code; set in the child before it runs anything. Every hard limit equals
    its soft limit, so agent code can lower a limit but never raise one back up."""
    pairs = [
        (resource.RLIMIT_AS, limits.get("memory_mb"), MIB),
        (resource.RLIMIT_CPU, limits.get("cpu_s"), 1),
        (resource.RLIMIT_NPROC, limits.get("max_procs"), 1),
        (resource.RLIMIT_FSIZE, limits.get("max_file_mb"), MIB),
        (resource.RLIMIT_CORE, 0, 1),
    ]
    for what, value, unit in pairs:
        if value is None:
            continue
        try:
            resource.setrlimit(what, (int(value * unit), int(value * unit)))
        except (ValueError, OSError):
            pass
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            what = getattr(resource, name)
            try:
                soft, hard = resource.getrlimit(what)
                if soft != hard:
                    resource.setrlimit(what, (soft, soft))
            except (ValueError, OSError):
                pass


def _set_limit(pid, what, value):
    """Set ``pid``'s limit ``what`` to ``value`` (soft = hard); False when not permitted."""
    try:
        resource.prlimit(pid, what, (value, value))
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
    """(bytes in blocks, entries) under ``path``, counted until either passes its cap: an empty
    file costs no block but an inode, so a flood of them is caught by the entry count."""
    total = entries = 0
    stack = [path]
    while stack and total <= byte_cap and entries <= entry_cap:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        pass
        except OSError:
            pass
    return total, entries


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


def _run_code(code, glb):
    """Run agent code in ``glb``; returns its exit code (tracebacks go to stderr)."""
    try:
        exec(compile(code, "<agent>", "exec"), glb)  # noqa: S102 - this IS the sandbox
        return 0
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - agent faults become exit code 1
        traceback.print_exc()
        return 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass


def _close_fds_except(keep):
    """Close inherited fds (the protocol pipe above all: agent code must not forge replies)."""
    start = 3
    for fd in sorted(k for k in keep if k >= 3) + [4096]:
        os.closerange(start, fd)
        start = fd + 1


def _drop_privileges(uid):
    """No setuid binary may regain privileges; under a root host, become the session's own uid
    (which also clears every capability)."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    # The session process is not dumpable (see _session_main) and a uid change clears the flag
    # too; agent code gets it back so its own /proc/self stays readable (e.g. /proc/self/fd).
    _prctl(PR_SET_DUMPABLE, 1)


def _child_setup(out_w, err_w, limits, workdir, keep=(), uid=None):
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    _close_fds_except(set(keep))
    os.chdir(workdir)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _apply_rlimits(limits)
    _drop_privileges(uid)
    sys.stdout = open(1, "w", buffering=1, closefd=False, errors="backslashreplace")
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")


class Worker:
    """A forked child waiting for requests on a pipe: one-shot for stateless steps (its exit
    status *is* the result), or the long-lived kernel of a stateful session (``ctrl_r`` only
    says a step is over; everything measured comes from the kernel's /proc)."""

    def __init__(self, pid, req_w, ctrl_r, out_r, err_r):
        self.pid, self.req_w, self.ctrl_r, self.out_r, self.err_r = pid, req_w, ctrl_r, out_r, err_r
        self.pidfd = os.pidfd_open(pid)
        self.status = None
        self.rusage = None

    def fds(self):
        return tuple(fd for fd in (self.req_w, self.ctrl_r, self.out_r, self.err_r, self.pidfd) if fd is not None)


def _worker_loop(req_r, ctrl_w):
    """Body of a worker: run requests in one globals dict. A one-shot worker (``ctrl_w`` None)
    runs one request and exits with its code; a kernel writes one line per finished step."""
    glb = {"__name__": "__main__", "__builtins__": __builtins__}
    reader = os.fdopen(req_r, "r")
    for line in reader:
        req = json.loads(line)
        if req.get("command") is not None:
            argv = req["command"]
            try:
                os.execvpe(argv[0], argv, req.get("env") or dict(os.environ))
            except OSError as exc:
                print("cannot run %r: %s" % (argv[0], exc), file=sys.stderr)
                return 127
        rc = _run_code(req["code"], glb)
        if ctrl_w is None:
            return rc
        os.write(ctrl_w, (json.dumps({"exit_code": rc & 0xFF}) + "\n").encode())
    return 0


class Zygote:
    """Serves requests; keeps a pre-forked spare worker so fork and exit stay off the hot path."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.workdir = cfg["workdir"]
        self.limits = cfg["limits"]
        self.tail_bytes = cfg.get("tail_bytes", 8192)
        # Private /tmp and /dev/shm share one tmpfs (see _isolate) whose bytes count as memory.
        self.scratch = "/tmp" if cfg.get("namespaces") else None
        self.spare = None   # one-shot worker for the next stateless step
        self.kernel = None  # persistent worker of a stateful session

    def _spawn(self, one_shot):
        req_r, req_w = os.pipe()
        ctrl_r, ctrl_w = os.pipe() if not one_shot else (None, None)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                keep = (req_r,) if one_shot else (req_r, ctrl_w)
                _child_setup(out_w, err_w, self.limits, self.workdir, keep=keep, uid=self.cfg.get("uid"))
                code = _worker_loop(req_r, ctrl_w)
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
            os._exit(code & 0xFF if isinstance(code, int) else 1)
        for fd in (req_r, ctrl_w, out_w, err_w):
            if fd is not None:
                os.close(fd)
        return Worker(pid, req_w, ctrl_r, out_r, err_r)

    def prepare(self, stateful):
        """Fork the next worker ahead of need (called while the agent is thinking)."""
        if stateful:
            if self.kernel is None:
                self.kernel = self._spawn(one_shot=False)
        elif self.spare is None:
            self.spare = self._spawn(one_shot=True)

    def execute(self, req):
        timeout = float(req.get("timeout") or 60.0)
        t0 = time.perf_counter()
        stateful = bool(req.get("stateful")) and req.get("code") is not None
        self.prepare(stateful)
        worker = self.kernel if stateful else self.spare
        if not stateful:
            self.spare = None
        scratch0 = _used_bytes(self.scratch) if self.scratch else 0
        memory = self.limits.get("memory_mb")
        if memory and self.scratch:  # what /tmp and /dev/shm hold is not the step's to allocate
            _set_limit(worker.pid, resource.RLIMIT_AS, max(memory * MIB - scratch0, 16 * MIB))
        cpu0 = None
        if stateful:
            cpu0 = self._resume_kernel(worker)
        msg = {"code": req.get("code"), "command": req.get("command"), "env": req.get("env")}
        try:
            os.write(worker.req_w, (json.dumps(msg) + "\n").encode())
        except OSError:
            pass  # the worker is gone; _watch reports how it ended
        reply = self._watch(worker, timeout, t0, req, cpu0, scratch0)
        if stateful and (reply["killed"] or worker.status is not None):
            self.kernel = None  # _watch already killed it and closed its fds
            reply["detail"] = (reply["detail"] + "; interpreter restarted, variables lost").lstrip("; ")
        return reply

    def _resume_kernel(self, kernel):
        """Before a stateful step: drop stale step reports (lines a thread of the last step
        wrote after it ended), move the CPU cap up by one step's worth, reset the peak memory
        mark, and let the stopped kernel run again. Returns its CPU seconds so far."""
        _drain(kernel.ctrl_r, None)
        cpu0 = _cpu_seconds(kernel.pid) or 0.0
        cap = self.limits.get("cpu_s")
        if cap:
            _set_limit(kernel.pid, resource.RLIMIT_CPU, int(cpu0 + cap) + 1)
        _reset_peak_rss(kernel.pid)
        try:
            os.kill(kernel.pid, signal.SIGCONT)
        except OSError:
            pass
        return cpu0

    def _settle(self, worker, stateful):
        """After a step and before its reply: stop the kernel (every thread: nothing it left
        running may change files or burn CPU while the host grades) and kill every other process
        of the step, so between steps nothing of the agent's runs."""
        keep = set()
        if stateful and worker.status is None:
            try:
                os.kill(worker.pid, signal.SIGSTOP)
                _, status, rusage = os.wait4(worker.pid, os.WUNTRACED)
                if not os.WIFSTOPPED(status):
                    worker.status, worker.rusage = status, rusage
            except ChildProcessError:
                worker.status = -1
            except OSError:
                pass
            if worker.status is None:
                keep.add(worker.pid)
        for idle in (self.spare, self.kernel):  # forked ahead of need, or stopped since its step
            if idle is not None and idle is not worker and idle.status is None:
                keep.add(idle.pid)
        _kill_descendants(keep)

    def _kill(self, worker):
        """SIGKILL the worker's session and the worker, and reap it."""
        for target in (lambda: os.killpg(worker.pid, signal.SIGKILL), lambda: os.kill(worker.pid, signal.SIGKILL)):
            try:
                target()
            except OSError:
                pass
        if worker.status is None:
            try:
                _, worker.status, worker.rusage = os.wait4(worker.pid, 0)
            except ChildProcessError:
                worker.status = -1

    def _discard(self, worker):
        self._kill(worker)
        _close_fds(worker)

    def shutdown(self):
        for worker in (self.spare, self.kernel):
            if worker is not None:
                self._discard(worker)
        self.spare = self.kernel = None
        _kill_descendants()

    def _over_memory(self, memory_mb):
        """Files in the scratch tmpfs plus the resident memory of every process of the session
        (the kernel and spare included) past ``memory_mb``: a message, else None."""
        scratch = _used_bytes(self.scratch)
        procs = _proportional_memory(_descendants(os.getpid()))
        if scratch + procs <= memory_mb * MIB:
            return None
        return ("memory limit reached: processes %d MiB + /tmp and /dev/shm %d MiB > %d MiB"
                % (procs // MIB, scratch // MIB, memory_mb))

    def _watch(self, worker, timeout, t0, req, cpu0, scratch0):
        """Collect output until the step ends; enforce timeout, output, disk and memory caps;
        settle the session; build the reply from what the session measured itself."""
        stateful = cpu0 is not None
        out, err = Tail(self.tail_bytes), Tail(self.tail_bytes)
        streams = {worker.out_r: out, worker.err_r: err}
        watch = {worker.out_r, worker.err_r, worker.pidfd} | ({worker.ctrl_r} if stateful else set())
        output_limit = self.cfg.get("output_limit_bytes", 8 * MIB)
        disk_limit = self.cfg.get("disk_limit_mb", 1024) * MIB
        file_limit = int(req.get("max_files") or self.cfg.get("max_files") or 100000)
        memory = self.limits.get("memory_mb")
        killed, detail, report = None, "", None
        deadline = t0 + timeout
        next_check, first_usage = t0 + 0.2, None
        while report is None and worker.status is None:
            now = time.perf_counter()
            if now >= deadline:
                killed, detail = "timeout", "killed after %.1f s timeout" % timeout
                break
            ready, _, _ = select.select(list(watch), [], [], min(deadline - now, 0.2))
            for fd in ready:
                if fd in streams:
                    data = _read(fd)
                    if data:
                        streams[fd].add(data)
                    else:
                        watch.discard(fd)
                elif fd == worker.ctrl_r:
                    line = _read(fd)
                    watch.discard(fd)
                    report = line.decode("utf-8", "replace").splitlines()[0] if line else ""
                elif fd == worker.pidfd:
                    watch.discard(fd)
                    try:
                        _, worker.status, worker.rusage = os.wait4(worker.pid, 0)
                    except ChildProcessError:  # reaped elsewhere: how it ended is unknown
                        worker.status = -1
            if out.total + err.total > output_limit:
                killed, detail = "output", "output exceeded %d bytes" % output_limit
                break
            if time.perf_counter() >= next_check:
                began = time.perf_counter()
                used, entries = _dir_usage(self.workdir, disk_limit, file_limit)
                # A step that only frees space (cleaning up after an earlier flood) is never
                # stopped for usage it found on arrival.
                grew = first_usage is not None and (used > first_usage[0] or entries > first_usage[1])
                first_usage = first_usage or (used, entries)
                if used > disk_limit and grew:
                    killed, detail = "disk", "session directory exceeded %d MiB" % (disk_limit // MIB)
                    break
                if entries > file_limit and grew:
                    killed, detail = "disk", "session directory holds more than %d files and folders" % file_limit
                    break
                if memory and self.scratch:
                    detail = self._over_memory(memory)
                    if detail:
                        killed = "memory"
                        break
                    detail = ""
                spent = time.perf_counter() - began
                # A big folder takes a while to scan: check less often (<= ~20% of a core).
                next_check = time.perf_counter() + min(2.0, max(0.2, 5 * spent))
        if killed is not None:
            self._kill(worker)
        self._settle(worker, stateful and killed is None)
        for fd in (worker.out_r, worker.err_r):
            _drain(fd, streams[fd])  # only what is buffered: orphans may hold the pipes open
        exit_code, cpu_s, peak = None, 0.0, 0.0
        if stateful and worker.status is None and report is not None:
            exit_code, killed, detail = _kernel_exit_code(report, killed, detail)
            cpu_s = max((_cpu_seconds(worker.pid) or cpu0) - cpu0, 0.0)
            peak = _peak_rss_mb(worker.pid)
        elif worker.status is not None and worker.status != -1:
            if worker.rusage is not None:
                cpu_s = worker.rusage.ru_utime + worker.rusage.ru_stime - (cpu0 or 0.0)
                peak = worker.rusage.ru_maxrss / 1024.0
            if killed is None:
                exit_code, killed, detail = _decode_status(worker.status, cpu_s, self.limits.get("cpu_s"))
        elif killed is None:
            killed, detail = "signal", "the worker ended without a trace"
        if killed is None and "MemoryError" in err.text()[-2000:]:
            killed, detail = "memory", "memory limit reached (MemoryError)"
            if scratch0 >= MIB:
                detail += "; /tmp and /dev/shm hold %d MiB of the limit" % (scratch0 // MIB)
        if stateful and killed is not None and worker.status is None:
            self._kill(worker)  # a kernel whose report was malformed is not trusted again
        if worker is not self.kernel or killed is not None or worker.status is not None:
            _close_fds(worker)  # exactly once: one-shot workers always, a kernel when it died
        return {
            "exit_code": exit_code, "stdout_tail": out.text(), "stderr_tail": err.text(),
            "wall_s": time.perf_counter() - t0, "cpu_s": max(cpu_s, 0.0), "peak_mem_mb": peak,
            "killed": killed, "detail": detail,
        }


def _kernel_exit_code(report, killed, detail):
    """The exit code in a kernel's end-of-step line (agent code can write that pipe, so the
    line is checked: an int 0-255, else the step is reported as an error)."""
    try:
        code = json.loads(report)["exit_code"]
        if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255:
            return code, killed, detail
    except (ValueError, TypeError, KeyError):
        pass
    return None, killed or "error", detail or "the step's end-of-step report was malformed"


def _close_fds(worker):
    for fd in worker.fds():
        try:
            os.close(fd)
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


def _decode_status(status, cpu_s, cpu_cap):
    """(exit code, kill reason, detail) of a worker's wait status."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), None, ""
    sig = os.WTERMSIG(status)
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_cap and cpu_s >= cpu_cap - 0.05):
        killed, detail = "timeout", "CPU time limit reached"  # hard = soft: the kernel sends SIGKILL
    elif sig == signal.SIGXFSZ:
        killed, detail = "disk", "file size limit reached"
    elif sig == signal.SIGKILL:
        killed, detail = "memory", "killed by SIGKILL (likely out of memory)"
    else:
        killed, detail = "signal", "killed by signal %d" % sig
    return -sig, killed, detail


def _serve(zygote, requests, replies, ready):
    """The session loop: one JSON request per line in, one JSON reply per line out."""
    replies.write(json.dumps(ready) + "\n")
    for line in requests:
        req = json.loads(line)
        if req.get("op") == "exit":
            break
        try:
            reply = zygote.execute(req)
        except Exception:  # noqa: BLE001 - a zygote bug is reported, never silent
            reply = {"exit_code": None, "killed": "error", "detail": traceback.format_exc(limit=5)}
        replies.write(json.dumps(reply) + "\n")
        # Off the hot path (the agent is thinking now): fork the next worker.
        zygote.prepare(bool(req.get("stateful")) and req.get("code") is not None)
    zygote.shutdown()


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
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0700")  # set-up space
    scratch, stash = os.path.join(root, "scratch"), os.path.join(root, "stash")
    os.mkdir(scratch)
    _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV,
           "size=%dm,nr_inodes=%d,mode=0755" % (memory, int(cfg.get("max_files") or 100000)))
    keep = cfg.get("keep_visible", [])
    for target, sub in (("/tmp", "tmp"), ("/dev/shm", "shm")):
        if os.path.isdir(target):
            os.mkdir(os.path.join(scratch, sub), 0o1777)
            os.chmod(os.path.join(scratch, sub), 0o1777)
            _private_scratch(target, os.path.join(scratch, sub), keep, stash)
    _umount(scratch)
    _umount(root)


def _umount(path):
    _check(_libc.umount2(path.encode(), MNT_DETACH), "umount %s" % path)


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


def _session_main(cfg, msg, req_fd, reply_fd, ready):
    """Body of a forked session (never returns)."""
    code = 1
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the mother's death ends every session
        scfg = dict(cfg, uid=msg.get("uid"))
        if cfg.get("namespaces"):
            _isolate(cfg, msg["dir"])
            pid = os.fork()  # the first child of the new pid namespace is its init
            if pid:
                os.close(req_fd)
                os.close(reply_fd)
                _, status = os.waitpid(pid, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            _umount("/proc")  # the mother's, covered otherwise
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        else:
            scfg["workdir"] = os.path.join(cfg["sessions_root"], msg["dir"])
            _set_subreaper()
        # Agent code that shares this process's uid (unprivileged hosts) cannot ptrace it or
        # write its memory, so it cannot forge the results this process reports.
        _prctl(PR_SET_DUMPABLE, 0)
        os.chdir(scfg["workdir"])
        sys.path[0] = scfg["workdir"]
        requests = os.fdopen(req_fd, "r")
        replies = os.fdopen(reply_fd, "w", buffering=1)
        _serve(Zygote(scfg), requests, replies, dict(ready, pid=os.getpid()))
        code = 0
    except BaseException:  # noqa: BLE001 - the host sees EOF and the mother's log says why
        traceback.print_exc()
    os._exit(code)


def _mother_loop(cfg, control, ready):
    """Fork a session per ``spawn`` message; kill on ``kill``; exit when the host goes away."""
    sessions = {}
    while True:
        readable, _, _ = select.select([control], [], [], 1.0)
        for sid, pid in list(sessions.items()):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    del sessions[sid]
            except ChildProcessError:
                del sessions[sid]
        if not readable:
            continue
        data, fds, _, _ = socket.recv_fds(control, 1 << 16, 2)
        if not data:
            break  # the host closed the socket (or died)
        msg = json.loads(data)
        if msg["op"] == "spawn":
            pid = os.fork()
            if pid == 0:
                control.close()
                _session_main(cfg, msg, fds[0], fds[1], ready)
            sessions[msg["sid"]] = pid
        elif msg["op"] == "kill" and msg["sid"] in sessions:
            try:
                os.kill(sessions[msg["sid"]], signal.SIGKILL)
            except OSError:
                pass
        for fd in fds:
            os.close(fd)
    for pid in sessions.values():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def main():
    cfg = json.loads(sys.argv[1])
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    os.chdir(cfg["sessions_root"])
    sys.path.insert(0, cfg["sessions_root"])
    control = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)  # stray prints from preloaded modules must not reach a protocol
    failed = []
    for mod in cfg.get("preload", []):
        try:
            __import__(mod)
        except Exception as exc:  # noqa: BLE001 - report, keep going
            failed.append("%s: %s" % (mod, exc))
    ready = {"ready": True, "preload_failed": failed}
    control.sendall(json.dumps(dict(ready, pid=os.getpid())).encode())
    _mother_loop(cfg, control, ready)


if __name__ == "__main__":
    main()
