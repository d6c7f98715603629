"""The scaffolds' submission check and MLE-Dojo's ``sample_submission`` info read the task's own
sample submission (``Task.sample_submission_path``), which MLE-bench names per competition
(e.g. ``sampleSubmission.csv``), not a hard-coded ``public/sample_submission.csv``."""

from __future__ import annotations

import pandas as pd
import pytest

from sandmle.graders.toy import make_toy_task
from sandmle.scaffolds.mledojo import MledojoScaffold
from sandmle.scaffolds.plumbing import check_submission


@pytest.fixture()
def renamed_sample_task(tmp_path):
    """A toy task whose sample submission is called ``sampleSubmission.csv``, as MLE-bench's
    competitions often name it; the default file name is gone."""
    task = make_toy_task(tmp_path / "task", "binary")
    renamed = task.public_dir / "sampleSubmission.csv"
    task.sample_submission_path.rename(renamed)
    return task.model_copy(update={"sample_submission": renamed})


def test_the_check_compares_with_the_tasks_own_sample(renamed_sample_task, tmp_path):
    task = renamed_sample_task
    workdir = tmp_path / "work"
    workdir.mkdir()
    sample = pd.read_csv(task.sample_submission_path)
    sample.to_csv(workdir / "submission.csv", index=False)
    ok, detail = check_submission(workdir, task.sample_submission_path)
    assert ok, detail
    assert "matches the sample format" in detail  # compared, not "no sample submission"

    sample.rename(columns={sample.columns[1]: "wrong"}).to_csv(workdir / "submission.csv", index=False)
    ok, detail = check_submission(workdir, task.sample_submission_path)
    assert not ok and "differ from the sample" in detail


def test_mledojo_shows_the_tasks_own_sample(renamed_sample_task):
    task = renamed_sample_task
    shown = MledojoScaffold._info(task, "sample_submission")
    assert shown.splitlines()[0] == task.sample_submission_path.read_text().splitlines()[0]
