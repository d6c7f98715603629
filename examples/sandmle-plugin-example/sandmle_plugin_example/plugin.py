"""Hook implementations: this module is the ``example`` entry point of group ``sandmle``."""

from __future__ import annotations

from sandmle.core import hookimpl

from .config import ExactMatchConfig, OneShotConfig


@hookimpl
def register_scaffolds(register):
    def make_one_shot(config: OneShotConfig):
        from .scaffold import OneShotScaffold  # imported when the component is built

        return OneShotScaffold(config)

    register("one-shot", make_one_shot, config=OneShotConfig,
             description="Ask the policy once for a full solution script, run it, submit.")


@hookimpl
def register_graders(register):
    def make_exact_match(config: ExactMatchConfig):
        from .grader import ExactMatchGrader  # pandas: only when a grader is built

        return ExactMatchGrader(config)

    register("exact-match", make_exact_match, config=ExactMatchConfig,
             description="Share of rows whose targets equal the answers exactly.")
