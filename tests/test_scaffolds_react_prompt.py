"""The ReAct scaffold's task prompt stays short on media tasks: folders of many files are folded.

An image task's public folder holds ~1,000 ``<id>.png`` files; listed one per line they made a
17,323-token first prompt, twice SmolLM2's context window (tests/test_engine_backend.py). The
task is real (the ``procedural`` generator's digits images); nothing is faked.
"""

from __future__ import annotations

from sandmle.core.interfaces import ScaffoldLimits
from sandmle.scaffolds.plumbing import estimate_tokens, folded_listing, public_file_listing
from sandmle.scaffolds.react import task_prompt


def test_folders_of_many_files_are_folded_with_their_count(generated_tasks):
    [task] = generated_tasks(["digits-image-multiclass"])
    files = public_file_listing(task)
    prompt = task_prompt(task, ScaffoldLimits())
    by_folder: dict[str, int] = {}
    for f in files:
        by_folder[f.rpartition("/")[0]] = by_folder.get(f.rpartition("/")[0], 0) + 1
    assert max(by_folder.values()) > 100, by_folder  # the task really has a big media folder
    for folder, n in by_folder.items():
        if n > 8:
            assert f"- ./{folder}/... and {n - 4} other files ({n} in all)" in prompt
        else:  # small folders (the top level: train.csv, test.csv, ...) are listed in full
            assert all(f"- ./{f}\n" in prompt for f in files if f.rpartition("/")[0] == folder)
    full = estimate_tokens([{"content": "\n".join(files)}])
    assert estimate_tokens([{"content": prompt}]) < 2000 < full


def test_folding_keeps_order_and_small_folders():
    paths = ["sample_submission.csv", "test.csv", "train.csv"] + [f"img/{i:02}.png" for i in range(9)]
    assert folded_listing(paths[:11]) == paths[:11]  # 8 files in img/: listed in full
    assert folded_listing(paths) == paths[:3] + paths[3:7] + ["img/... and 5 other files (9 in all)"]
