"""The hostile-code battery against every registered sandbox, through ``sandmle sandbox check``
(the command plugin authors run). Docker runs only where an engine starts."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sandmle.core.testing import checks_for


def _sandbox_names() -> list[str]:
    from sandmle.core import plugins

    names = sorted(plugins.get_registry().names("sandboxes"))
    plugins.reset()
    return names


def test_battery_has_at_least_41_programs():
    # 31 before issue 18, plus its six containment checks (sandboxes/conformance_containment.py),
    # plus issue 26's deep nesting, kernel surface, fork memory and unlinked files
    # (sandboxes/conformance_limits.py).
    assert len(checks_for("sandboxes")) >= 41


@pytest.mark.slow
@pytest.mark.parametrize("name", _sandbox_names())
def test_battery_passes_via_cli(name):
    from sandmle.core.cli import build_cli

    if name == "docker":
        from sandmle.plugins.docker.sandbox import engine_unavailable_reason

        reason = engine_unavailable_reason(start=True)
        if reason:
            pytest.skip(f"docker engine unavailable: {reason}")
    args = ["sandbox", "check", name, "--json"]
    # max_files: the inode-flood check fills the cap; a small one keeps it quick on slow disks.
    # disk_limit_mb=512: the unlinked-files check writes past the cap; a small one keeps it cheap.
    if name == "docker":
        args += ["--config", json.dumps({"max_files": 2000, "disk_limit_mb": 512})]
    if name == "local":
        # The battery opens ~35 sessions; preloading only numpy keeps it within the CI budget
        # (the default pandas/sklearn preload is exercised by tests/test_sandbox_local.py).
        # memory_mb=1024: page faults are slow on small CI VMs and one check fills the limit.
        args += ["--config", json.dumps({"preload": ["numpy"], "pool_size": 2, "memory_mb": 1024,
                                         "max_files": 2000, "disk_limit_mb": 512})]
    result = CliRunner().invoke(build_cli(), args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    rows = json.loads(result.output)
    assert [r["check"] for r in rows] == [fn.__name__ for fn in checks_for("sandboxes")]
    failed = [f"{r['check']}: {r['detail']}" for r in rows if not r["passed"]]
    assert not failed, "\n".join(failed)
    assert result.exit_code == 0
