"""The zygote's mother and sessions (see :mod:`zygote_main`; stdlib only, runs inside the
sandbox): the mother imports the preload modules once and forks a session per ``spawn``
message; a session isolates itself and serves its steps. Last of the joined program: its
``main`` is the entry point.
"""

import gc
import json
import os
import select
import signal
import socket
import sys
import traceback

if __package__:  # imported as part of sandmle; joined into one program otherwise
    from .zygote_main import Zygote, _clear_keyrings, _serve
    from .zygote_os import (
        MS_MOVE, MS_NODEV, MS_NOEXEC, MS_NOSUID, PR_SET_DUMPABLE, PR_SET_PDEATHSIG, _isolate, _mount, _prctl,
        _set_subreaper, _umount,
    )


def _join_cgroups(fds):
    """Move this process into the session's cgroups (``cgroup.procs`` fds from the host) before
    it forks anything, so all of the session is charged there. An error string, or ''."""
    error = ""
    for fd in fds:
        try:
            os.write(fd, b"0")
        except OSError as exc:
            error = "cannot join the session cgroup: %s" % exc
        os.close(fd)
    return error


def _session_main(cfg, msg, req_fd, reply_fd, ready, cgroup_fds=()):
    """Body of a forked session (never returns)."""
    code = 1
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the mother's death ends every session
        scfg = dict(cfg, uid=msg.get("uid"))
        if cgroup_fds:
            error = _join_cgroups(cgroup_fds)
            if error:  # the poll stays on; the host's log says why
                scfg["memory_enforcement"] = "poll"
                ready = dict(ready, cgroup_error=error)
        else:
            scfg["memory_enforcement"] = "poll"
        ready = dict(ready, memory_enforcement=scfg["memory_enforcement"])
        if cfg.get("namespaces"):
            _isolate(cfg, msg["dir"])
            pid = os.fork()  # the first child of the new pid namespace is its init
            if pid:
                os.close(req_fd)
                os.close(reply_fd)
                _, status = os.waitpid(pid, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            # This pid namespace's own /proc replaces the mother's (not stacked on it). It is
            # mounted while the old one is still fully visible, which an unprivileged user
            # namespace requires, then moved into place.
            spare_point = cfg["sessions_root"]  # an empty folder since _isolate
            _mount("proc", spare_point, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            _umount("/proc")
            _mount(spare_point, "/proc", None, MS_MOVE)
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
    sessions, uids = {}, {}
    while True:
        readable, _, _ = select.select([control], [], [], 1.0)
        for sid, pid in list(sessions.items()):
            try:
                gone = bool(os.waitpid(pid, os.WNOHANG)[0])
            except ChildProcessError:
                gone = True
            if gone:
                del sessions[sid]
                if uids.get(sid) is not None:
                    _clear_keyrings(uids.pop(sid))
        if not readable:
            continue
        data, fds, _, _ = socket.recv_fds(control, 1 << 16, 8)
        if not data:
            break  # the host closed the socket (or died)
        msg = json.loads(data)
        if msg["op"] == "spawn":
            pid = os.fork()
            if pid == 0:
                control.close()
                _session_main(cfg, msg, fds[0], fds[1], ready, fds[2:])
            sessions[msg["sid"]], uids[msg["sid"]] = pid, msg.get("uid")
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
    for sid, pid in sessions.items():
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        if uids.get(sid) is not None:
            _clear_keyrings(uids[sid])


def main():
    cfg = json.loads(sys.argv[1])
    # The host forks the mother from a thread that lives as long as it does (pool._Spawner):
    # without bwrap's --die-with-parent, this ends the mother (and its sessions) with the host.
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
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
    # Every object the preload made goes to the collector's permanent generation: a full
    # collection in a session or a step's worker would otherwise write to each of them and so
    # copy every page of the shared heap (measured: 113 ms of CPU per forked child with pandas
    # and scikit-learn loaded, 4 ms frozen).
    gc.freeze()
    ready = {"ready": True, "preload_failed": failed}
    control.sendall(json.dumps(dict(ready, pid=os.getpid())).encode())
    _mother_loop(cfg, control, ready)


if __name__ == "__main__":
    main()
