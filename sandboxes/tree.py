"""Walking and removing a session's folder tree without recursion and without long paths.

Agent code may nest folders thousands deep: ``os.walk`` and ``shutil.rmtree`` then recurse past
Python's limit (RecursionError) and any path-based call fails past ``PATH_MAX`` (4096 bytes).
These helpers keep one descriptor open at a time, step down with ``openat(name, O_NOFOLLOW)``
and back up with ``openat("..")``, checking that the folder reached is the one left (device and
inode), so a tree that agent code moves while it is walked stops the walk instead of leading it
out of the session. Depth costs memory for the names still to visit, never stack or descriptors.

Stdlib only and free of ``sandmle`` imports: the zygote joins this file into the program it
runs inside the sandbox (see ``zygote_main.ZYGOTE_FILES``) and the docker runner embeds it.
"""

import os
import stat

_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _ident(fd):
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _entries(fd):
    """(name, is_dir, is_file, lstat result) of each entry of the folder open at ``fd``; names
    are read once (a listing, not a live iterator, so removing entries cannot disturb it)."""
    out = []
    try:
        with os.scandir(fd) as it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                out.append((entry.name, stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode), st))
    except OSError:
        pass
    out.reverse()  # popped from the end: visited in listing order
    return out


def walk_tree(top_fd, on_file=None, on_leave_dir=None, max_entries=None):
    """Visit every entry below the folder open at ``top_fd`` depth first, iteratively.

    ``on_file(dir_fd, rel_path, name, is_file, st)`` is called for each non-folder entry
    (``is_file``: a regular file; ``st``: its ``lstat`` result; links are reported, never
    followed) and for each folder as it is entered (with ``is_file`` None); ``on_leave_dir(dir_fd, name)`` after a folder's contents
    were visited, from its parent (``dir_fd``), e.g. to remove it. Returns (entries seen,
    complete): it stops early past ``max_entries`` or when a folder moved while it was walked.
    ``top_fd`` stays open and unmoved (the walk works on a duplicate)."""
    fd = os.dup(top_fd)
    frames = [("", _ident(fd), _entries(fd))]
    seen = 0
    try:
        while frames:
            prefix, ident, pending = frames[-1]
            if pending:
                name, is_dir, is_file, st = pending.pop()
                seen += 1
                if max_entries is not None and seen > max_entries:
                    return seen, False
                rel = prefix + name
                if not is_dir:
                    if on_file is not None:
                        on_file(fd, rel, name, is_file, st)
                    continue
                try:
                    child = os.open(name, _DIR_OPEN, dir_fd=fd)
                except PermissionError:
                    try:  # a folder agent code made unreadable (its own, so allowed)
                        os.chmod(name, 0o700, dir_fd=fd)
                        child = os.open(name, _DIR_OPEN, dir_fd=fd)
                    except OSError:
                        continue
                except OSError:
                    continue
                if on_file is not None:
                    on_file(fd, rel, name, None, st)
                os.close(fd)
                fd = child
                frames.append((rel + "/", _ident(fd), _entries(fd)))
                continue
            frames.pop()
            if not frames:
                break
            parent = os.open("..", _DIR_OPEN, dir_fd=fd)
            os.close(fd)
            fd = parent
            if _ident(fd) != frames[-1][1]:
                return seen, False  # moved under us: stop rather than follow it elsewhere
            if on_leave_dir is not None:
                on_leave_dir(fd, prefix.rstrip("/").rsplit("/", 1)[-1])
    finally:
        os.close(fd)
    return seen, True


class _Full(Exception):
    """The byte cap was passed: counting further is wasted work."""


def tree_usage(path, byte_cap, entry_cap):
    """(bytes in blocks, entries) under ``path``, counted until either passes its cap (an
    empty file costs no block but an inode, so a flood of them is caught by the entry count)."""
    totals = [0, 0]

    def add(_fd, _rel, _name, _is_file, st):
        totals[0] += st.st_blocks * 512
        totals[1] += 1
        if totals[0] > byte_cap:
            raise _Full()

    try:
        top = os.open(path, _DIR_OPEN)
    except OSError:
        return 0, 0
    try:
        seen, _ = walk_tree(top, on_file=add, max_entries=entry_cap)
    except _Full:
        seen = totals[1]
    finally:
        os.close(top)
    return totals[0], seen


def clear_tree(top_fd):
    """Remove everything below the folder open at ``top_fd`` (``rm -rf`` of its contents);
    never raises for what cannot be removed. True when the folder is empty afterwards."""
    def unlink(fd, _rel, name, is_file, _st):
        if is_file is not None:
            try:
                os.unlink(name, dir_fd=fd)
            except OSError:
                pass

    def rmdir(fd, name):
        try:
            os.rmdir(name, dir_fd=fd)
        except OSError:
            pass

    try:
        walk_tree(top_fd, on_file=unlink, on_leave_dir=rmdir)
        with os.scandir(top_fd) as it:
            return next(it, None) is None
    except OSError:
        return False


def remove_tree(path):
    """``rm -rf path`` without recursion or long paths; never raises. True when it is gone."""
    path = os.fspath(path)
    parent, name = os.path.split(path.rstrip("/"))
    try:
        pfd = os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return not os.path.lexists(path)
    try:
        try:
            fd = os.open(name, _DIR_OPEN, dir_fd=pfd)
        except FileNotFoundError:
            return True
        except OSError:  # a link or a file, not a folder: remove the name itself
            try:
                os.unlink(name, dir_fd=pfd)
                return True
            except OSError:
                return False
        try:
            clear_tree(fd)
        finally:
            os.close(fd)
        try:
            os.rmdir(name, dir_fd=pfd)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            return False
    finally:
        os.close(pfd)
