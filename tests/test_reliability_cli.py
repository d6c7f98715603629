"""Careless and hostile inputs at the command line: each gets a clear one-screen error (or a safe
rendering), never a traceback. Commands run in-process through ``sandmle.core.cli.main`` (the
console-script entry point, error handling included), with stdout and stderr captured."""

from __future__ import annotations

import json

ESCAPES = "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[1;32mGOLD MEDAL\x1b[0m\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\\r\x9b31m"


class Ran:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def sandmle(*args):
    """Run ``sandmle ARGS`` as the console script does; returns code and captured output."""
    from click.testing import CliRunner

    from sandmle.core.cli import main

    with CliRunner(env={"COLUMNS": "200"}).isolation() as (out, err, _):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return Ran(code, out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace"))


def no_traceback(proc, *words):
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out, out[-3000:]
    for word in words:
        assert word in out, (word, out[-3000:])


def test_show_escapes_terminal_control_codes(tmp_path):
    turn = {"messages_in": 1, "text": "answer " + ESCAPES, "stage": "draft" + ESCAPES, "format_ok": False,
            "format_error": "bad " + ESCAPES, "observations": ["out " + ESCAPES],
            "tool_calls": [{"name": "run" + ESCAPES, "arguments": {"code": ESCAPES}}]}
    traj = {"task_id": "t" + ESCAPES, "scaffold": "react", "backend": "b", "turns": [turn],
            "stop_reason": "backend_error" + ESCAPES, "extra": {"backend_error": "APIError: " + ESCAPES}}
    record = {"trajectory": traj, "grade": {"valid_submission": False, "reason": ESCAPES}, "reward": {"total": 0.0}}
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(record) + "\n")
    shown = sandmle("show", str(path))
    assert shown.returncode == 0, shown.stderr[-2000:]
    for raw in ("\x1b", "\x07", "\x9b", "\r"):
        assert raw not in shown.stdout, f"{raw!r} reached the terminal"
    assert "\\x1b[2J" in shown.stdout and "\\x9b31m" in shown.stdout
    assert "APIError" in shown.stdout, "the backend error's cause is shown in the summary"


def test_show_refuses_binary_and_foreign_files(tmp_path):
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 10)
    no_traceback(sandmle("show", str(binary)), "not a text JSONL file")
    for content in ("[1, 2]\n", "3\n", '{"turns": [1]}\n', '{"trajectory": "x"}\n'):
        other = tmp_path / "o.jsonl"
        other.write_text(content)
        no_traceback(sandmle("show", str(other)), "not a trajectory record")


def test_sandbox_check_refuses_a_bad_config():
    no_traceback(sandmle("sandbox", "check", "local", "--config", "{bad"), "--config", "not valid JSON")
    no_traceback(sandmle("sandbox", "check", "local", "--config", "[1]"), "must be a JSON object")
    no_traceback(sandmle("sandbox", "check", "local", "--config", '{"memroy_mb": 5}'), "memroy_mb", "valid arguments")
    no_traceback(sandmle("sandbox", "check", "local", "--config", '{"memory_mb": 1}'), "memory_mb")


def test_trajectories_export_refuses_a_non_finite_heldout_share_before_reading_anything(tmp_path):
    """``--heldout nan`` passed click's FloatRange (every comparison with NaN is False)."""
    for value in ("nan", "inf"):
        res = sandmle("trajectories", "export", str(tmp_path), "--out", str(tmp_path / "sft.jsonl"), "--heldout", value)
        assert res.returncode == 2 and "Invalid value for '--heldout'" in res.stderr, res.stdout + res.stderr
    assert not (tmp_path / "sft.jsonl").exists()
