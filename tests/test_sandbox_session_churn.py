"""Sessions opened back to back never fail to start (issue: one benchmark run printed "warm sandbox
session failed to start: sandbox session exited", and the mother's log was gone afterwards)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sandmle.sandboxes.local import LocalSandbox, LocalSandboxConfig
from sandmle.sandboxes.conformance import make_canary_task

SESSIONS = 200


@pytest.mark.slow
def test_200_sessions_two_at_a_time_all_start_and_run(tmp_path, caplog):
    task = make_canary_task(tmp_path / "canary")
    sandbox = LocalSandbox(LocalSandboxConfig(pool_size=2))
    results: list[tuple[int | None, str]] = []

    async def one(i: int) -> None:
        async with await sandbox.open(task) as session:
            res = await session.exec(f"print({i} * 2)")
            results.append((res.exit_code, res.stdout_tail.strip()))

    async def churn() -> None:
        queue = list(range(SESSIONS))

        async def lane() -> None:
            while queue:
                await one(queue.pop())

        await asyncio.gather(lane(), lane())
        await sandbox.shutdown()

    with caplog.at_level(logging.WARNING, logger="sandmle.sandboxes"):
        asyncio.run(churn())
    assert len(results) == SESSIONS
    assert sorted(int(out) // 2 for code, out in results if code == 0) == list(range(SESSIONS))
    failed = [r.getMessage() for r in caplog.records if "failed to start" in r.getMessage() or "died" in r.getMessage()]
    assert not failed, failed[:3]
