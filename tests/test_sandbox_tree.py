"""Walking and removing session trees without recursion (sandboxes/tree.py): depth past
Python's recursion limit and past PATH_MAX, links never followed, unreadable folders."""

from __future__ import annotations

import os
import shutil

import pytest

from tree_support import nest  # tests/ is on sys.path

from sandmle.sandboxes.files import list_confined
from sandmle.sandboxes.tree import remove_tree, tree_usage


@pytest.fixture(autouse=True)
def _no_deep_leftovers(tmp_path):
    """pytest's own clean-up of old temporary folders recurses (shutil.rmtree): a 2,500-deep
    folder left here made a later session's clean-up raise RecursionError after every test had
    passed, turning the run red. Each test's folder is emptied the way the sandbox does it."""
    yield
    for child in list(tmp_path.iterdir()):
        remove_tree(child)


def test_shutil_fails_where_remove_tree_succeeds(tmp_path):
    """The reason for the module: the standard library recurses."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    nest(a, 2500)
    nest(b, 2500)
    with pytest.raises((RecursionError, OSError)):
        shutil.rmtree(a)
    assert remove_tree(b) and not b.exists()
    assert remove_tree(a) and not a.exists()


def test_listing_and_usage_count_files_past_path_max(tmp_path):
    nest(tmp_path, 2500)
    (tmp_path / "top.txt").write_text("t")
    os.symlink("/etc/passwd", tmp_path / "link")
    os.symlink("/etc", tmp_path / "dirlink")
    files = list_confined(tmp_path)
    assert files[1] == "top.txt" and len(files) == 2
    assert files[0].count("nest/") == 2500 and files[0].endswith("deep.bin")
    assert len(files[0]) > 4096  # past PATH_MAX: only a descriptor-relative walk gets there
    used, entries = tree_usage(str(tmp_path), 1 << 40, 1 << 30)
    assert entries == 2500 + 4 and used >= 65536
    # Caps stop the count early (the zygote's poll stays cheap on a flood).
    assert tree_usage(str(tmp_path), 1 << 40, 100)[1] == 101
    assert list_confined(tmp_path, "nest/nest")[0].startswith("nest/nest/nest/")


def test_remove_tree_never_raises_and_handles_unreadable_folders(tmp_path):
    target = tmp_path / "t"
    (target / "locked" / "inner").mkdir(parents=True)
    (target / "locked" / "inner" / "f").write_text("x")
    os.chmod(target / "locked", 0)
    assert remove_tree(target) and not target.exists()
    assert remove_tree(tmp_path / "missing")
    link = tmp_path / "link"
    os.symlink(tmp_path / "elsewhere", link)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "keep.txt").write_text("k")
    assert remove_tree(link) and not os.path.lexists(link)
    assert (tmp_path / "elsewhere" / "keep.txt").exists(), "a link was followed"
