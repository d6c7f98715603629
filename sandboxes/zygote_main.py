"""The zygote: the only sandmle code that runs *inside* a sandbox.

It is stdlib-only and never imports ``sandmle`` (the package is not visible inside the
sandbox): the host joins the sources of ``zygote_os.py``, this file and ``zygote_mother.py``
(:data:`ZYGOTE_FILES`) and passes them to ``python -c`` as one program.

Two levels of fork, so that neither interpreter start nor imports are ever paid on the hot path:

* the **mother** is started once per sandbox (inside one bwrap with the sandbox's base directory
  bound at ``/sessions``), imports the preload modules, and then only forks sessions. The host
  talks to it over a ``SOCK_SEQPACKET`` socket on stdin: ``spawn`` messages carry the two pipe
  fds of the new session (SCM_RIGHTS), ``kill`` messages end one.
* a **session** is a fork of the mother that enters fresh mount, pid, ipc and network
  namespaces, bind-mounts its own directory at ``/workspace``, unmounts ``/sessions`` (other
  sessions are gone from its view), makes ``/tmp`` and ``/dev/shm`` two folders of one private
  tmpfs sized by the memory limit, mounts its own ``/proc``, and serves one JSON request per line
  on its pipe. Without bwrap
  (``isolation="none"``) a session is a plain fork that works in its host directory.
* every **execution** is a child forked from the session. It gets its own session id, rlimits,
  fresh stdout/stderr pipes and only those fds, ``no_new_privs``, and (when the host runs as
  root) its own unprivileged uid, so ``RLIMIT_NPROC`` bounds a fork bomb per session and agent
  code can neither signal nor trace the session process that reports its results. The session
  enforces the timeout, output, disk, file-count and memory caps and, before it replies, kills
  every other descendant (it is a child subreaper, or pid 1 of its namespace). A stateless step
  is a one-shot child whose exit status and rusage are the result. In stateful mode one
  long-lived child (the "kernel") runs every step in the same globals; it is stopped (SIGSTOP)
  between steps, so nothing of the agent's runs while the host grades, and its CPU time and
  peak memory are read from its /proc; a step that kills it gets a fresh fork.
"""

import ctypes
import gc
import json
import os
import resource
import select
import signal
import sys
import time
import traceback

KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = -4, -5
KEYCTL_GET_KEYRING_ID, KEYCTL_CLEAR, KEYCTL_INVALIDATE = 0, 7, 21
ZYGOTE_FILES = ("tree.py", "zygote_seccomp.py", "zygote_os.py", "zygote_main.py", "zygote_mother.py")  # one program, in this order

if __package__:  # imported as part of sandmle (the host, tests); joined into one program otherwise
    from .zygote_seccomp import SYS_KEYCTL, install_seccomp
    from .zygote_os import (  # noqa: F401
        CPU_GRACE_S, MIB, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, Tail, _apply_rlimits, _cpu_seconds, _descendants, _drain,
        _kill_descendants, _peak_rss_mb, _prctl, _proportional_memory, _read, _reap, _reset_peak_rss,
        _set_limit, _used_bytes, _dir_usage, _fs_full, _fs_usage,
    )

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


def _child_setup(out_w, err_w, limits, workdir, keep=(), uid=None, seccomp=False):
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    _close_fds_except(set(keep))
    os.chdir(workdir)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _apply_rlimits(limits)
    try:  # the kernel's OOM killer (cgroup or global) picks agent code, never the session
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")  # set while privileged: agent code cannot lower it again
    except OSError:
        pass
    _drop_privileges(uid)
    if seccomp:  # last: the setup above needs calls the filter denies; fails closed
        install_seccomp()
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
    """Body of a worker: run requests in one globals dict. Whether it is one-shot (a stateless
    step) or the kernel of a stateful session is said by its first request, so the spare forked
    ahead of need can serve either. After each step it writes its exit
    code (and its children's peak memory) on ``ctrl_w`` and stops itself: the session reads
    the report once the worker is stopped, measures the rest from /proc, and either lets a
    kernel continue (SIGCONT) for the next step or kills a one-shot worker after replying, so
    the cost of tearing down a big address space never delays a reply."""
    glb = {"__name__": "__main__", "__builtins__": __builtins__}
    stop, me, write, rusage = os.kill, os.getpid(), os.write, resource.getrusage  # before agent code
    # The fork left every page copy-on-write: take the first-write copies of a step's path now,
    # while the request is not here yet (a trivial step's worker took ~35 on its path, measured).
    json.loads(json.dumps({"code": "pass\n", "command": None, "env": None, "one_shot": True}))
    _run_code("pass\n", {"__builtins__": __builtins__})
    json.dumps({"exit_code": 0, "children_peak_kb": rusage(resource.RUSAGE_CHILDREN).ru_maxrss})
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
        children_kb = rusage(resource.RUSAGE_CHILDREN).ru_maxrss
        write(ctrl_w, (json.dumps({"exit_code": rc & 0xFF, "children_peak_kb": children_kb}) + "\n").encode())
        stop(me, signal.SIGSTOP)
        if req.get("one_shot", True):
            return rc
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
        # One-shot workers whose step is over, held stopped until the reply is out: killing a
        # process that has a pandas/sklearn-sized address space wakes it to tear that down,
        # which on a busy machine ran before the reply (~1-2 ms of a trivial step). Only in a
        # session with its own pid namespace, whose end kills them whatever happens.
        self.doomed = []
        # A worker that stops itself raises SIGCHLD; its handler writes to this pipe, which the
        # step loop selects on (a stop, unlike an exit, does not wake a pidfd).
        self.wakeup_r, wakeup_w = os.pipe()
        for fd in (self.wakeup_r, wakeup_w):
            os.set_blocking(fd, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wakeup_w)

    def _spawn(self):
        req_r, req_w = os.pipe()
        ctrl_r, ctrl_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        gc.freeze()  # what the session made since it was forked: see the mother's freeze
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)  # the session's, not to be written by a child's signals
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _child_setup(out_w, err_w, self.limits, self.workdir, keep=(req_r, ctrl_w), uid=self.cfg.get("uid"),
                             seccomp=self.cfg.get("seccomp", False))
                code = _worker_loop(req_r, ctrl_w)
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
            os._exit(code & 0xFF if isinstance(code, int) else 1)
        for fd in (req_r, ctrl_w, out_w, err_w):
            os.close(fd)
        return Worker(pid, req_w, ctrl_r, out_r, err_r)

    def prepare(self, stateful, last=None):
        """Fork the next worker ahead of need (called while the agent is thinking), and reap
        the workers killed after the last reply. ``last``: the request line and the reply of
        the step just served, rehearsed after a fork (:meth:`_rehearse`)."""
        for worker in self.doomed:
            self._kill(worker)
        self.doomed = []
        _reap()
        forked = None
        if stateful:
            if self.kernel is None:
                self.kernel = forked = self._spawn()
        elif self.spare is None:
            self.spare = forked = self._spawn()
        if forked is not None:
            try:
                self._rehearse(forked, *(last or (json.dumps({"code": "pass\n", "timeout": 60.0}), {"exit_code": 0})))
            except Exception:  # noqa: BLE001 - only a head start; the step does it all again
                pass

    def _rehearse(self, worker, line, reply):
        """Run once, on harmless inputs, what a step's path runs in this session, right after a
        fork (while the agent thinks): the fork left every page copy-on-write, and the first
        write to each copies it. On its path a trivial step took ~190 such copies in the session
        (~0.4 ms); after this ~60. Nothing is sent, read, limited or killed here."""
        json.loads(line)
        json.dumps(reply)
        if self.scratch:
            _used_bytes(self.scratch)
        _cpu_seconds(worker.pid)
        _peak_rss_mb(worker.pid)
        _proc_state(worker.pid)
        resource.prlimit(worker.pid, resource.RLIMIT_AS)  # reads it
        tail = Tail(self.tail_bytes)
        tail.add(b"rehearsal\n")
        tail.text()
        select.select([worker.out_r, worker.err_r, worker.pidfd, self.wakeup_r], [], [], 0)
        _descendants(os.getpid())

    def execute(self, req):
        timeout = float(req.get("timeout") or 60.0)
        t0 = time.perf_counter()
        stateful = bool(req.get("stateful")) and req.get("code") is not None
        if stateful and self.kernel is None and self.spare is not None:
            self.kernel, self.spare = self.spare, None  # the first stateful step: the spare is fresh
        self.prepare(stateful)
        worker = self.kernel if stateful else self.spare
        if not stateful:
            self.spare = None
        scratch0 = _used_bytes(self.scratch) if self.scratch else 0
        memory = self.limits.get("memory_mb")
        if memory and self.scratch:  # what /tmp and /dev/shm hold is not the step's to allocate
            _set_limit(worker.pid, resource.RLIMIT_AS, max(memory * MIB - scratch0, 16 * MIB))
        cpu0 = self._resume_kernel(worker) if stateful else 0.0
        msg = {"code": req.get("code"), "command": req.get("command"), "env": req.get("env"),
               "one_shot": not stateful}
        try:
            os.write(worker.req_w, (json.dumps(msg) + "\n").encode())
        except OSError:
            pass  # the worker is gone; _watch reports how it ended
        reply = self._watch(worker, timeout, t0, req, cpu0, scratch0, stateful)
        if stateful and (reply["killed"] or worker.status is not None):
            self.kernel = None  # _watch already killed it and closed its fds
            reply["detail"] = (reply["detail"] + "; interpreter restarted, variables lost").lstrip("; ")
        return reply

    def _resume_kernel(self, kernel):
        """Before a stateful step: drop stale step reports, move the CPU cap up by one step's
        worth, reset the peak memory mark, and let the stopped kernel run again. Returns its
        CPU seconds so far."""
        _drain(kernel.ctrl_r, None)
        cpu0 = _cpu_seconds(kernel.pid) or 0.0
        cap = self.limits.get("cpu_s")
        if cap:
            _set_limit(kernel.pid, resource.RLIMIT_CPU, int(cpu0 + cap) + 1, CPU_GRACE_S)
        _reset_peak_rss(kernel.pid)
        try:
            os.kill(kernel.pid, signal.SIGCONT)
        except OSError:
            pass
        return cpu0

    def _poll_worker(self, worker):
        """True when ``worker`` has stopped itself; records its status if it exited instead."""
        try:
            pid, status, rusage = os.wait4(worker.pid, os.WNOHANG | os.WUNTRACED)
        except ChildProcessError:
            worker.status = -1
            return False
        if pid == 0:
            return False
        if os.WIFSTOPPED(status):
            return True
        worker.status, worker.rusage = status, rusage
        return False

    def _settle(self, worker, keep_worker, defer_kill=False):
        """Before the reply: kill every process of the step but the idle workers and, if
        ``keep_worker``, the (stopped) kernel, which is stopped again once nothing else of
        the agent's is left to wake it: between steps nothing of the agent's runs.
        ``defer_kill``: a one-shot worker that stopped itself is held stopped the same way and
        killed after the reply (:meth:`prepare`)."""
        keep = {idle.pid for idle in (self.spare, self.kernel)
                if idle is not None and idle is not worker and idle.status is None}
        if keep_worker or defer_kill:
            keep.add(worker.pid)
        _kill_descendants(keep)
        if (keep_worker or defer_kill) and not _hold_stopped(worker.pid):
            self._kill(worker)
        elif defer_kill:
            self.doomed.append(worker)

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
        for worker in (self.spare, self.kernel, *self.doomed):
            if worker is not None:
                self._discard(worker)
        self.spare = self.kernel = None
        self.doomed = []
        _kill_descendants()

    def _over_memory(self, memory_mb):
        """Files in the scratch tmpfs plus the resident memory of every process of the session
        (the kernel and spare included) past ``memory_mb``: a message, else None."""
        scratch = _used_bytes(self.scratch)
        procs = _proportional_memory(_descendants(os.getpid()))
        if scratch + procs <= memory_mb * MIB:
            return None
        how = self.cfg.get("memory_enforcement", "poll")
        return ("memory limit reached: processes %d MiB + /tmp and /dev/shm %d MiB > %d MiB (%s)"
                % (procs // MIB, scratch // MIB, memory_mb,
                   "polled: no session cgroup on this host" if how == "poll" else "polled; kernel cap: " + how))

    def _watch(self, worker, timeout, t0, req, cpu0, scratch0, stateful):
        """Collect output until the step ends; enforce timeout, output, disk and memory caps;
        settle the session; build the reply from what the session measured itself."""
        out, err = Tail(self.tail_bytes), Tail(self.tail_bytes)
        streams = {worker.out_r: out, worker.err_r: err}
        watch = {worker.out_r, worker.err_r, worker.pidfd, self.wakeup_r}
        output_limit = self.cfg.get("output_limit_bytes", 8 * MIB)
        disk_limit = self.cfg.get("disk_limit_mb", 1024) * MIB
        file_limit = int(req.get("max_files") or self.cfg.get("max_files") or 100000)
        memory = self.limits.get("memory_mb")
        tmpfs = self.cfg.get("workspace_fs") == "tmpfs"
        killed, detail, stopped = None, "", False
        deadline = t0 + timeout
        next_check, first_usage = t0 + 0.2, None
        while not stopped and worker.status is None:
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
                elif fd == self.wakeup_r:
                    _drain(fd, None)
                    if worker.status is None:
                        stopped = self._poll_worker(worker)
                elif fd == worker.pidfd:
                    watch.discard(fd)
                    if worker.status is None:  # not already reaped through its SIGCHLD
                        try:
                            _, worker.status, worker.rusage = os.wait4(worker.pid, 0)
                        except ChildProcessError:  # reaped elsewhere: how it ended is unknown
                            worker.status = -1
            if out.total + err.total > output_limit:
                killed, detail = "output", "output exceeded %d bytes" % output_limit
                break
            if not stopped and time.perf_counter() >= next_check:
                began = time.perf_counter()
                if tmpfs:  # the kernel caps it; statvfs sees unlinked open files too
                    used, entries = _fs_usage(self.workdir)
                else:
                    used, entries = _dir_usage(self.workdir, disk_limit, file_limit)
                # A step that only frees space (cleaning up after an earlier flood) is never
                # stopped for usage it found on arrival.
                grew = first_usage is not None and (used > first_usage[0] or entries > first_usage[1])
                first_usage = first_usage or (used, entries)
                if tmpfs and used >= disk_limit and grew:
                    killed, detail = "disk", ("session directory full: %d MiB (its tmpfs size, enforced by "
                                              "the kernel)" % (disk_limit // MIB))
                    break
                if used > disk_limit and grew:
                    killed, detail = "disk", ("session directory exceeded %d MiB (folder scan: the "
                                              "fallback where no tmpfs could be mounted)" % (disk_limit // MIB))
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
                # A big folder takes a while to scan: check less often (<= ~20% of a core).
                next_check = time.perf_counter() + min(2.0, max(0.2, 5 * (time.perf_counter() - began)))
        exit_code, cpu_s, peak = None, 0.0, 0.0
        if killed is not None:
            self._kill(worker)
        elif stopped:  # measured now, from the kernel's accounts, while the worker is stopped
            cpu_s = (_cpu_seconds(worker.pid) or cpu0) - cpu0
            peak = _peak_rss_mb(worker.pid)
            exit_code, killed, detail, children_mb = _step_report(_last_line(worker.ctrl_r), memory)
            peak = max(peak, children_mb)
        # Deferred only inside a pid namespace: a session killed before it gets to kill the
        # worker takes it along there, while a plain fork's stopped worker would be orphaned.
        self._settle(worker, keep_worker=stateful and stopped and killed is None,
                     defer_kill=not stateful and stopped and killed is None and bool(self.cfg.get("namespaces")))
        for fd in (worker.out_r, worker.err_r):
            _drain(fd, streams[fd])  # only what is buffered: orphans may hold the pipes open
        if not stopped and worker.status is not None and worker.status != -1:
            if worker.rusage is not None:
                cpu_s = worker.rusage.ru_utime + worker.rusage.ru_stime - cpu0
                peak = worker.rusage.ru_maxrss / 1024.0
            if killed is None:
                exit_code, killed, detail = _decode_status(worker.status, cpu_s, self.limits.get("cpu_s"),
                                                           self.cfg.get("memory_enforcement", "poll"))
        elif killed is None and not stopped:
            killed, detail = "signal", "the worker ended without a trace"
        if killed is None and tmpfs and exit_code not in (0, None) and _fs_full(self.workdir):
            # The kernel refused a write (ENOSPC) and the step failed on it: name the cap.
            killed, detail = "disk", ("session directory full: %s (its tmpfs, capped by the kernel: "
                                      "disk_limit_mb, max_files)" % _fs_full(self.workdir))
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


def _has_keys(uid):
    """True when the kernel accounts keys to ``uid`` (/proc/key-users is global, not per pid
    namespace); looking its keyrings up would create them, so this is asked first."""
    try:
        with open("/proc/key-users") as fh:
            return any(line.split(":", 1)[0].strip() == str(uid) for line in fh)
    except OSError:
        return False


def _clear_keyrings(uid):
    """Empty and invalidate the kernel keyrings of a session's uid (user and user-session), as
    that uid, so no key agent code made (with seccomp off) outlives the session. The mother
    calls it once the session is gone (the session itself may be killed mid-shutdown)."""
    if not _has_keys(uid):
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            libc = ctypes.CDLL(None, use_errno=True)
            # Serial numbers first: a lookup by special id after an invalidation would make
            # the keyring afresh.
            serials = [libc.syscall(SYS_KEYCTL, KEYCTL_GET_KEYRING_ID, special, 0, 0, 0)
                       for special in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING)]
            for serial in serials:
                if serial > 0:
                    libc.syscall(SYS_KEYCTL, KEYCTL_CLEAR, serial, 0, 0, 0)
                    libc.syscall(SYS_KEYCTL, KEYCTL_INVALIDATE, serial, 0, 0, 0)
        finally:
            os._exit(0)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _hold_stopped(pid, wait_s=1.0):
    """Stop ``pid`` (again: a process of the step may have continued it before it was killed)
    and wait until it is; consume the stop notice so the next step's own stop is the next one
    seen. False when it could not be held stopped."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except OSError:
        return False
    deadline = time.perf_counter() + wait_s
    while _proc_state(pid) not in ("T", "t"):
        if _proc_state(pid) in (None, "Z", "X") or time.perf_counter() > deadline:
            return False
        time.sleep(0.0005)
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG | os.WUNTRACED)[0] == 0:
                return True
        except ChildProcessError:
            return False


def _proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


def _last_line(fd):
    """The last complete line waiting on ``fd`` (the end-of-step report), or None."""
    data = bytearray()
    os.set_blocking(fd, False)
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk or len(data) > 1 << 20:
                break
            data += chunk
    except (BlockingIOError, OSError):
        pass
    os.set_blocking(fd, True)
    lines = bytes(data).decode("utf-8", "replace").splitlines()
    return lines[-1] if lines else None


def _step_report(line, memory_mb):
    """(exit code, kill reason, detail, children's peak MiB) from a worker's end-of-step line.
    Agent code can write that pipe too, so the line is checked: an exit code 0-255 and a peak
    no larger than the memory limit, else the step is reported as an error."""
    try:
        report = json.loads(line)
        code, kb = report["exit_code"], report.get("children_peak_kb", 0)
        if type(code) is int and 0 <= code <= 255 and type(kb) in (int, float) and 0 <= kb < float("inf"):
            return code, None, "", min(kb / 1024.0, float(memory_mb or kb / 1024.0))
    except (ValueError, TypeError, KeyError):
        pass
    return None, "error", "the step's end-of-step report was missing or malformed", 0.0


def _close_fds(worker):
    for fd in worker.fds():
        try:
            os.close(fd)
        except OSError:
            pass


def _decode_status(status, cpu_s, cpu_cap, memory_enforcement="poll"):
    """(exit code, kill reason, detail) of a worker's wait status."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), None, ""
    sig = os.WTERMSIG(status)
    # SIGXCPU comes at RLIMIT_CPU's soft limit; SIGKILL at its hard one (CPU_GRACE_S later) when
    # agent code ignored SIGXCPU. rusage counts CPU time finer than the kernel's limit check
    # (ticks), often ~15% less, hence the margin.
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_cap and cpu_s >= 0.75 * cpu_cap):
        killed, detail = "timeout", "CPU time limit reached (%s s, RLIMIT_CPU)" % cpu_cap
    elif sig == signal.SIGXFSZ:
        killed, detail = "disk", "file size limit reached"
    elif sig == signal.SIGKILL and memory_enforcement.startswith("cgroup"):
        killed, detail = "memory", "killed by the kernel at the session's memory cap (%s)" % memory_enforcement
    elif sig == signal.SIGKILL:
        killed, detail = "memory", "killed by SIGKILL (likely out of memory)"
    else:
        killed, detail = "signal", "killed by signal %d" % sig
    return -sig, killed, detail


def _serve(zygote, requests, replies, ready):
    """The session loop: one JSON request per line in, one JSON reply per line out."""
    # The first step's worker is forked before the session says it is ready: a session from the
    # warm pool then starts its first step as fast as any later one.
    zygote.prepare(False)
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
        zygote.prepare(bool(req.get("stateful")) and req.get("code") is not None, last=(line, reply))
    zygote.shutdown()
