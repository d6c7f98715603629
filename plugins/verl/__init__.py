"""Integration with veRL: the ``verl`` trainer (``pip install 'sandmle[verl]'``).

GRPO with veRL 0.9.1 on a Ray cluster (or a local one), SandMLE's settings by default; every
episode is one of our registered scaffolds running inside veRL's agent loop. Registering imports
nothing heavy; building the trainer checks that veRL 0.9.1 is installed.

Uses ``core``, ``training`` (the train stage), ``scaffolds`` and ``evaluation`` (episodes inside
veRL's agent loop), ``graders`` (rewards) and ``sandboxes``.
"""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl

from .config import VerlTrainerConfig


def _make_verl(config: VerlTrainerConfig) -> Any:
    from .launch import make_verl_trainer

    return make_verl_trainer(config)


@hookimpl
def register_trainers(register: Any) -> None:
    register("verl", _make_verl, config=VerlTrainerConfig, extra="verl",
             description="GRPO on veRL 0.9.1 + Ray: our scaffolds as a veRL agent loop (SandMLE's setting)")
