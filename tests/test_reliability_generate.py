"""Generation output damaged by a kill or by hand: a rerun counts only task folders that load as
tasks, moves the others aside and generates them again; bad generate arguments are refused."""

from __future__ import annotations

import json
import shutil

import pandas as pd

from sandmle.graders.task_writer import write_task
from sandmle.generators.resume import INVALID_DIR, REJECTIONS, scan_output

from test_reliability_cli import no_traceback, sandmle


def fake_generated(out, index):
    """A valid task folder as the procedural generator names and annotates them."""
    frame = pd.DataFrame({"id": range(10), "x": range(10), "y": [0, 1] * 5})
    return write_task(out / f"seed-s0-{index:05d}", task_id=f"seed-s0-{index:05d}", train=frame,
                      test=frame[["id", "x"]], answers=frame[["id", "y"]], sample_submission=frame[["id", "y"]],
                      description="d", metric="accuracy", lower_is_better=False, id_column="id",
                      target_columns=["y"], provenance={"index": index, "rule_signature": f"sig{index}"})


def test_rerun_counts_only_folders_that_load(tmp_path):
    for i in range(4):
        fake_generated(tmp_path, i)
    (tmp_path / "seed-s0-00001" / "prepared" / "public" / "train.csv").unlink()
    (tmp_path / "seed-s0-00002" / "task.yaml").write_text("id: [unclosed\n")
    (tmp_path / REJECTIONS).write_text(json.dumps({"index": 7}) + "\n" + '{"index": 8, "rea')
    state = scan_output(tmp_path)
    assert sorted(state.done) == [0, 3]
    assert state.rejected == {7} and state.bad_rejection_lines == 1
    assert state.seen == {0, 3, 7}  # 1, 2 and 8 are candidates to generate again
    moved = sorted(p.name.split(".")[0] for p in (tmp_path / INVALID_DIR).iterdir())
    assert moved == ["seed-s0-00001", "seed-s0-00002"]
    assert (tmp_path / REJECTIONS).read_bytes().endswith(b"\n"), "the torn line is ended"
    assert "2 invalid task folder(s)" in state.describe() and "train.csv" in state.describe()


def test_generate_refuses_bad_arguments(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    for args, words in ((["--n", "0"], ["--n"]), (["--n", "-5"], ["--n"]), (["--workers", "0"], ["--workers"]),
                        (["--out", str(a_file)], ["--out", "not a folder"]),
                        (["--out", str(a_file / "sub")], ["--out", "is a file"])):
        full = ["generate", "--out", str(tmp_path / "o"), *args] if "--out" not in args else ["generate", *args]
        no_traceback(sandmle(*full), *words)
    assert not (tmp_path / "o").exists()


def test_eval_resumes_an_interrupted_generation(tmp_path):
    """The rerun of a killed ``sandmle eval`` finds one of its two tasks: it generates the
    other instead of planning a smaller study (the issue: 45 of 120 episodes went missing)."""
    tasks = tmp_path / "tasks"
    made = sandmle("generate", "--n", "2", "--out", tasks, "--seeds", "breast-cancer-binary", "--workers", "1")
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    first, second = sorted(p for p in tasks.iterdir() if (p / "task.yaml").is_file())
    shutil.rmtree(second)  # as if the kill came before it was written
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\noutput_dir: {tmp_path / 'run'}\ntasks: {{generator: {{name: procedural, "
                      f"args: {{workers: 1}}}}, n: 2, seeds: [breast-cancer-binary], dir: {tasks}}}\n"
                      "scaffolds: [react]\nevaluation: {seeds: [0], concurrency: 2}\n")
    ran = sandmle("eval", recipe, "--max-episodes", "0")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert len([p for p in tasks.iterdir() if (p / "task.yaml").is_file()]) == 2
    assert "2 episodes planned" in ran.stdout and "2 tasks of 2 expected" in ran.stdout, ran.stdout[-3000:]
