"""Files kept after an episode's session is gone: the final submission and AIDE's best solution,
size-capped, never through a symlink; the recipe switches. (Episodes that keep them for real run
in test_scaffolds_cli.py and test_eval_study.py.)"""

from __future__ import annotations

from pathlib import Path

from sandmle.core.recipe import parse_recipe
from sandmle.core.records import Trajectory
from sandmle.evaluation.episode import EpisodeRunner
from sandmle.evaluation.graded_episode import KeepPolicy, best_solution_code, keep_files


def _traj(**extra) -> Trajectory:
    return Trajectory(task_id="t", scaffold="s", backend="b", extra=extra)


def test_submission_and_best_solution_are_copied(tmp_path):
    work, dest = tmp_path / "work", tmp_path / "out" / "episode"
    work.mkdir()
    (work / "submission.csv").write_text("id,y\n1,0\n")
    journal = [{"id": 0, "code": "print('draft')"}, {"id": 1, "code": "print('best')"}]
    kept = keep_files(work, _traj(journal=journal, best_node=1), dest, KeepPolicy())
    assert kept == {"submission.csv": "episode/submission.csv", "best_solution.py": "episode/best_solution.py"}
    assert (dest / "submission.csv").read_text() == "id,y\n1,0\n"
    assert (dest / "best_solution.py").read_text() == "print('best')"


def test_files_over_the_cap_are_named_not_copied(tmp_path):
    work, dest = tmp_path / "work", tmp_path / "episode"
    work.mkdir()
    (work / "submission.csv").write_bytes(b"x" * (3 * 2**20))
    kept = keep_files(work, _traj(), dest, KeepPolicy(max_mb=1))
    assert kept == {"submission.csv": "skipped: 3.0 MiB is over the 1 MiB cap"}
    assert not dest.exists()
    assert keep_files(work, _traj(), dest, KeepPolicy(max_mb=4)) == {"submission.csv": "episode/submission.csv"}


def test_a_symlinked_submission_is_never_followed(tmp_path):
    secret = tmp_path / "answers.csv"
    secret.write_text("id,y\n1,SECRET\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "submission.csv").symlink_to(secret)
    assert keep_files(work, _traj(), tmp_path / "episode", KeepPolicy()) == {}
    assert not (tmp_path / "episode").exists()


def test_best_solution_needs_a_journal_and_a_best_node():
    assert best_solution_code(_traj()) is None
    assert best_solution_code(_traj(journal=[{"id": 0, "code": "x"}], best_node=None)) is None
    assert best_solution_code(_traj(journal="junk", best_node=0)) is None
    assert best_solution_code(_traj(journal=[{"id": 0, "code": "x"}], best_node=0)) == "x"


def test_the_recipe_turns_keeping_on_and_off(tmp_path):
    def policy(evaluation: dict) -> KeepPolicy:
        recipe = parse_recipe({"evaluation": evaluation})
        return EpisodeRunner(recipe, registry=None, out_dir=Path(tmp_path))._keep_policy()

    assert policy({}) == KeepPolicy(enabled=True, max_mb=20.0)  # on by default
    assert policy({"keep_files": False, "keep_max_mb": 2}) == KeepPolicy(enabled=False, max_mb=2.0)
