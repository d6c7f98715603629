"""The zygote: the only sandmle code that runs *inside* a sandbox.

It is stdlib-only and never imports ``sandmle`` (the package is not visible inside the
sandbox): the host reads this file and passes its source to ``python -c``. Protocol: one JSON
object per line on stdin (requests), one JSON object per line on stdout (replies). The first
reply is ``{"ready": ...}`` once the preload modules are imported.

Every execution is a child forked from this warm process (so it pays no interpreter start and
no imports). The child gets its own session id, rlimits and fresh stdout/stderr pipes; this
process enforces the timeout, output cap and disk cap, and afterwards kills every descendant
(it is a child subreaper, so orphans and daemonised grandchildren come back to it).
In stateful mode one long-lived child (the "kernel") runs every step in the same globals;
it is replaced by a fresh fork when a step kills it.
"""

import ctypes
import json
import os
import resource
import select
import signal
import sys
import time
import traceback

PR_SET_CHILD_SUBREAPER = 36
MIB = 1024 * 1024


def _set_subreaper():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort; without it only the process group is killed
        pass


def _apply_rlimits(limits):
    """Limits for agent code; set in the child before it runs anything."""
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
    """SIGKILL everything below this process except ``keep``; repeat until nothing is left."""
    for _ in range(50):
        victims = _descendants(os.getpid()) - set(keep)
        if not victims:
            break
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _reap(keep)
        time.sleep(0.002)
    _reap(keep)


def _reap(keep=()):
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _dir_size(path, cap):
    total = 0
    stack = [path]
    while stack and total <= cap:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        pass
        except OSError:
            pass
    return total


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


def _child_setup(out_w, err_w, limits, workdir, keep=()):
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    _close_fds_except(set(keep))
    os.chdir(workdir)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _apply_rlimits(limits)
    sys.stdout = open(1, "w", buffering=1, closefd=False, errors="backslashreplace")
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")


class Zygote:
    def __init__(self, cfg):
        self.cfg = cfg
        self.workdir = cfg["workdir"]
        self.limits = cfg["limits"]
        self.tail_bytes = cfg.get("tail_bytes", 8192)
        self.kernel = None  # (pid, ctrl_r, req_w, out_r, err_r) in stateful mode

    # -- spawning -------------------------------------------------------------------------
    def _fork(self, body, keep=()):
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(out_r)
                os.close(err_r)
                _child_setup(out_w, err_w, self.limits, self.workdir, keep)
                code = body()
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
                code = 1
            os._exit(code & 0xFF if isinstance(code, int) else 1)
        os.close(out_w)
        os.close(err_w)
        return pid, out_r, err_r

    def _start_kernel(self):
        req_r, req_w = os.pipe()
        ctrl_r, ctrl_w = os.pipe()

        def kernel_loop():
            glb = {"__name__": "__main__", "__builtins__": __builtins__}
            reader = os.fdopen(req_r, "r")
            for line in reader:
                req = json.loads(line)
                soft = resource.getrusage(resource.RUSAGE_SELF)
                used = soft.ru_utime + soft.ru_stime
                if self.limits.get("cpu_s"):
                    try:
                        resource.setrlimit(resource.RLIMIT_CPU,
                                           (int(used + self.limits["cpu_s"]) + 1, resource.RLIM_INFINITY))
                    except (ValueError, OSError):
                        pass
                rc = _run_code(req["code"], glb)
                os.write(ctrl_w, (json.dumps({"exit_code": rc}) + "\n").encode())
            return 0

        # The kernel must not inherit RLIMIT_CPU's hard cap: it is raised per step.
        limits = dict(self.limits)
        saved, self.limits = self.limits, dict(limits, cpu_s=None)
        try:
            pid, out_r, err_r = self._fork(kernel_loop, keep=(req_r, ctrl_w))
        finally:
            self.limits = saved
        os.close(req_r)
        os.close(ctrl_w)
        self.kernel = (pid, ctrl_r, req_w, out_r, err_r)

    # -- one execution --------------------------------------------------------------------
    def execute(self, req):
        timeout = float(req.get("timeout") or 60.0)
        t0 = time.perf_counter()
        stateful = req.get("stateful", False) and req.get("code") is not None
        if stateful:
            if self.kernel is None:
                self._start_kernel()
            pid, ctrl_r, req_w, out_r, err_r = self.kernel
            try:
                os.write(req_w, (json.dumps({"code": req["code"]}) + "\n").encode())
            except OSError:
                pass
            reply = self._watch(pid, out_r, err_r, timeout, t0, ctrl_r=ctrl_r)
            if reply.get("killed") or reply.get("kernel_died"):
                self._drop_kernel()
                reply["detail"] = (reply.get("detail", "") + "; interpreter restarted, variables lost").lstrip("; ")
            _kill_descendants(keep={pid} if self.kernel else ())
            reply.pop("kernel_died", None)
            return reply
        code = req.get("code")
        argv = req.get("command")
        env = req.get("env") or dict(os.environ)

        def body():
            if argv is not None:
                try:
                    os.execvpe(argv[0], argv, env)
                except OSError as exc:
                    print("cannot run %r: %s" % (argv[0], exc), file=sys.stderr)
                    return 127
            return _run_code(code, {"__name__": "__main__", "__builtins__": __builtins__})

        pid, out_r, err_r = self._fork(body)
        reply = self._watch(pid, out_r, err_r, timeout, t0)
        _kill_descendants()
        return reply

    def _drop_kernel(self):
        if self.kernel is None:
            return
        pid, ctrl_r, req_w, out_r, err_r = self.kernel
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        for fd in (ctrl_r, req_w, out_r, err_r):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        self.kernel = None

    def _watch(self, pid, out_r, err_r, timeout, t0, ctrl_r=None):
        """Collect output until the step ends; enforce timeout, output and disk caps."""
        out, err = Tail(self.tail_bytes), Tail(self.tail_bytes)
        streams = {out_r: out, err_r: err}
        open_fds = {out_r, err_r}
        output_limit = self.cfg.get("output_limit_bytes", 8 * MIB)
        disk_limit = self.cfg.get("disk_limit_mb", 1024) * MIB
        killed, detail, status, rusage = None, "", None, None
        pidfd = os.pidfd_open(pid) if ctrl_r is None else None
        deadline = t0 + timeout
        next_disk_check = t0 + 0.2
        kernel_reply = None
        watch_fds = set(open_fds) | ({pidfd} if pidfd is not None else {ctrl_r})
        while True:
            now = time.perf_counter()
            if now >= deadline:
                killed, detail = "timeout", "killed after %.1f s timeout" % timeout
                break
            ready, _, _ = select.select(list(watch_fds), [], [], min(deadline - now, 0.2))
            for fd in ready:
                if fd in streams:
                    try:
                        data = os.read(fd, 65536)
                    except OSError:
                        data = b""
                    if data:
                        streams[fd].add(data)
                    else:
                        watch_fds.discard(fd)
                        open_fds.discard(fd)
                elif fd == pidfd:
                    watch_fds.discard(fd)
                    _, status, rusage = os.wait4(pid, 0)
                elif fd == ctrl_r:
                    line = os.read(ctrl_r, 65536)
                    watch_fds.discard(fd)
                    if line:
                        kernel_reply = json.loads(line.decode().splitlines()[0])
                    else:
                        _, status, rusage = os.wait4(pid, 0)
            if out.total + err.total > output_limit:
                killed, detail = "output", "output exceeded %d bytes" % output_limit
                break
            if time.perf_counter() >= next_disk_check:
                next_disk_check = time.perf_counter() + 0.2
                if _dir_size(self.workdir, disk_limit) > disk_limit:
                    killed, detail = "disk", "session directory exceeded %d MiB" % (disk_limit // MIB)
                    break
            if ctrl_r is None and status is not None:
                break  # child exited; output left by orphans is drained below
            if ctrl_r is not None and (kernel_reply is not None or status is not None):
                break
        if killed is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            if status is None and ctrl_r is None:
                _, status, rusage = os.wait4(pid, 0)
        # Drain what is already buffered without waiting for orphans holding the pipes.
        for fd in list(open_fds):
            _drain(fd, streams[fd])
        if ctrl_r is None:
            for fd in (out_r, err_r):
                os.close(fd)
            if pidfd is not None:
                os.close(pidfd)
        exit_code = None
        kernel_died = False
        if ctrl_r is not None:
            if kernel_reply is not None:
                exit_code = kernel_reply["exit_code"]
            else:
                kernel_died = True
            if status is not None:
                exit_code, killed, detail = _decode_status(status, killed, detail)
        elif status is not None:
            exit_code, killed, detail = _decode_status(status, killed, detail)
        if killed is None and "MemoryError" in err.text()[-2000:]:
            killed, detail = "memory", "memory limit reached (MemoryError)"
        cpu_s, peak = 0.0, 0.0
        if rusage is not None:
            cpu_s = rusage.ru_utime + rusage.ru_stime
            peak = rusage.ru_maxrss / 1024.0
        elif ctrl_r is not None and self.kernel is not None:
            cpu_s, peak = self._kernel_usage(pid)
        return {
            "exit_code": exit_code, "stdout_tail": out.text(), "stderr_tail": err.text(),
            "wall_s": time.perf_counter() - t0, "cpu_s": cpu_s, "peak_mem_mb": peak,
            "killed": killed, "detail": detail, "kernel_died": kernel_died,
        }

    def _kernel_usage(self, pid):
        try:
            with open("/proc/%d/stat" % pid) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            tick = os.sysconf("SC_CLK_TCK")
            cpu = (int(fields[11]) + int(fields[12])) / tick
            with open("/proc/%d/status" % pid) as fh:
                hwm = [l for l in fh if l.startswith("VmHWM")]
            peak = int(hwm[0].split()[1]) / 1024.0 if hwm else 0.0
            return cpu, peak
        except (OSError, ValueError, IndexError):
            return 0.0, 0.0


def _drain(fd, tail):
    os.set_blocking(fd, False)
    while True:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            return
        if not data or tail.total > 64 * MIB:
            return
        tail.add(data)


def _decode_status(status, killed, detail):
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), killed, detail
    sig = os.WTERMSIG(status)
    if killed is None:
        if sig == signal.SIGXCPU:
            killed, detail = "timeout", "CPU time limit reached"
        elif sig == signal.SIGXFSZ:
            killed, detail = "disk", "file size limit reached"
        elif sig == signal.SIGKILL:
            killed, detail = "memory", "killed by SIGKILL (likely out of memory)"
        else:
            killed, detail = "signal", "killed by signal %d" % sig
    return -sig, killed, detail


def main():
    cfg = json.loads(sys.argv[1])
    _set_subreaper()
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    os.chdir(cfg["workdir"])
    sys.path.insert(0, cfg["workdir"])
    proto_out = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # stray prints from preloaded modules must not corrupt the protocol
    failed = []
    for mod in cfg.get("preload", []):
        try:
            __import__(mod)
        except Exception as exc:  # noqa: BLE001 - report, keep going
            failed.append("%s: %s" % (mod, exc))
    zygote = Zygote(cfg)
    proto_out.write(json.dumps({"ready": True, "preload_failed": failed, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("op") == "exit":
            break
        try:
            reply = zygote.execute(req)
        except Exception:  # noqa: BLE001 - a zygote bug is reported, never silent
            reply = {"exit_code": None, "killed": "error", "detail": traceback.format_exc(limit=5)}
        proto_out.write(json.dumps(reply) + "\n")
    zygote._drop_kernel()
    _kill_descendants()


if __name__ == "__main__":
    main()
