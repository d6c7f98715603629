"""A seccomp filter for agent code, assembled here as classic BPF (stdlib only; joined into the
zygote's program, see ``zygote_main.ZYGOTE_FILES``; no libseccomp binding is needed).

Agent code needs files, processes, threads, pipes and memory; it never needs the kernel's
rarer and riskier interfaces, which have carried most container escapes. The filter returns
``EPERM`` for: new namespaces (``clone``/``unshare`` with a ``CLONE_NEW*`` flag, ``setns``), so
no user namespace either; ``mount`` and the new mount API; the key management calls
(``keyctl``, ``add_key``, ``request_key``), so no key is left in the kernel after a session;
``ptrace`` and ``process_vm_*``; ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring``;
module, kexec, swap, reboot, quota and accounting calls; file handles. ``clone3`` gets
``ENOSYS`` (its flags live in memory a filter cannot read; the C library then falls back to
``clone``, whose flags it can). A syscall of another ABI than the native one (i386 or x32 on
x86-64) kills the process: their numbers differ and would slip through.
"""

import ctypes
import errno
import os
import platform
import struct

_DENY = ("ptrace", "mount", "umount2", "pivot_root", "setns", "keyctl", "add_key", "request_key", "bpf",
         "perf_event_open", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
         "open_by_handle_at", "name_to_handle_at", "userfaultfd", "open_tree", "move_mount", "fsopen",
         "fsconfig", "fsmount", "fspick", "mount_setattr", "swapon", "swapoff", "reboot", "acct", "quotactl",
         "lookup_dcookie", "process_vm_readv", "process_vm_writev", "io_uring_setup", "io_uring_enter",
         "io_uring_register", "iopl", "ioperm")
# Syscall numbers (asm/unistd_64.h on x86-64, asm-generic/unistd.h on aarch64).
_X86_64 = dict(ptrace=101, mount=165, umount2=166, pivot_root=155, setns=308, keyctl=250, add_key=248,
               request_key=249, bpf=321, perf_event_open=298, kexec_load=246, kexec_file_load=320,
               init_module=175, finit_module=313, delete_module=176, open_by_handle_at=304,
               name_to_handle_at=303, userfaultfd=323, open_tree=428, move_mount=429, fsopen=430,
               fsconfig=431, fsmount=432, fspick=433, mount_setattr=442, swapon=167, swapoff=168, reboot=169,
               acct=163, quotactl=179, lookup_dcookie=212, process_vm_readv=310, process_vm_writev=311,
               io_uring_setup=425, io_uring_enter=426, io_uring_register=427, iopl=172, ioperm=173,
               clone=56, unshare=272, clone3=435)
_AARCH64 = dict(ptrace=117, mount=40, umount2=39, pivot_root=41, setns=268, keyctl=219, add_key=217,
                request_key=218, bpf=280, perf_event_open=241, kexec_load=104, kexec_file_load=294,
                init_module=105, finit_module=273, delete_module=106, open_by_handle_at=265,
                name_to_handle_at=264, userfaultfd=282, open_tree=428, move_mount=429, fsopen=430,
                fsconfig=431, fsmount=432, fspick=433, mount_setattr=442, swapon=224, swapoff=225, reboot=142,
                acct=89, quotactl=60, lookup_dcookie=18, process_vm_readv=270, process_vm_writev=271,
                io_uring_setup=425, io_uring_enter=426, io_uring_register=427, clone=220, unshare=97, clone3=435)
# machine -> (AUDIT_ARCH_*, syscall table, bit marking the x32 ABI or 0)
_ARCHES = {"x86_64": (0xC000003E, _X86_64, 0x40000000), "aarch64": (0xC00000B7, _AARCH64, 0)}
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (NEWTIME, 0x80, is
# also CSIGNAL's range in clone's flags, so only unshare checks it).
_CLONE_NEW = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
_CLONE_NEWTIME = 0x00000080

_LD_ABS, _JEQ, _JSET, _RET = 0x20, 0x15, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, ...|JSET|K, BPF_RET|K
_RET_ALLOW, _RET_KILL_PROCESS, _RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16  # struct seccomp_data (arg0's low word, little endian)
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SYS_KEYCTL = _ARCHES.get(platform.machine(), (0, {"keyctl": -1}, 0))[1]["keyctl"]


def seccomp_supported():
    """True when this machine's architecture has a filter here."""
    return platform.machine() in _ARCHES


def _assemble(machine):
    """The filter as (code, jt, jf, k) instructions: check the ABI, then each syscall number."""
    audit_arch, nrs, x32_bit = _ARCHES[machine]
    deny, enosys = _RET_ERRNO | errno.EPERM, _RET_ERRNO | errno.ENOSYS
    head = [(_LD_ABS, 0, 0, _OFF_ARCH), (_JEQ, 1, 0, audit_arch), (_RET, 0, 0, _RET_KILL_PROCESS),
            (_LD_ABS, 0, 0, _OFF_NR)]
    checks = ([(_JSET, x32_bit, "deny")] if x32_bit else [])
    checks += [(_JEQ, nrs[name], "deny") for name in _DENY]
    checks += [(_JEQ, nrs["clone3"], "enosys"), (_JEQ, nrs["clone"], "clone"), (_JEQ, nrs["unshare"], "unshare")]
    # The blocks the checks jump to, in order; a flag test's "set" branch falls through to its
    # own deny return, its "clear" branch skips it.
    blocks = {
        "allow": [(_RET, 0, 0, _RET_ALLOW)],
        "deny": [(_RET, 0, 0, deny)],
        "enosys": [(_RET, 0, 0, enosys)],
        "clone": [(_LD_ABS, 0, 0, _OFF_ARG0), (_JSET, 0, 1, _CLONE_NEW), (_RET, 0, 0, deny),
                  (_RET, 0, 0, _RET_ALLOW)],
        "unshare": [(_LD_ABS, 0, 0, _OFF_ARG0), (_JSET, 0, 1, _CLONE_NEW | _CLONE_NEWTIME), (_RET, 0, 0, deny),
                    (_RET, 0, 0, _RET_ALLOW)],
    }
    order = ["allow", "deny", "enosys", "clone", "unshare"]
    tail_start = len(head) + len(checks)
    offset, pos = {}, tail_start
    for name in order:
        offset[name] = pos
        pos += len(blocks[name])
    prog = list(head)
    for code, k, label in checks:
        pc = len(prog)
        jt = offset[label] - (pc + 1)
        if not 0 <= jt <= 255:
            raise ValueError("seccomp filter too long for BPF's forward jumps")
        prog.append((code, jt, 0, k))
    for name in order:
        prog.extend(blocks[name])
    return prog


def install_seccomp():
    """Load the filter into this (single-threaded) process; it holds for every process and
    program this one starts. Needs ``no_new_privs`` set first. Raises OSError on failure."""
    machine = platform.machine()
    if machine not in _ARCHES:
        raise OSError(errno.ENOSYS, "no seccomp filter for architecture %s" % machine)
    prog = _assemble(machine)
    raw = b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))

    class _Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = _Fprog(len(prog), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "seccomp: %s" % os.strerror(err))
