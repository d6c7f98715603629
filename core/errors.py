"""Exceptions that the CLI turns into one-screen messages (exit code 2, no traceback)."""

from __future__ import annotations


class SandmleError(Exception):
    """Base class for errors meant for the user, not for a traceback."""

    exit_code = 1


class UnknownComponentError(SandmleError, KeyError):
    """A component name that no loaded plugin registered."""

    exit_code = 2

    def __init__(self, kind: str, name: str, choices: list[str]):
        self.kind, self.name, self.choices = kind, name, choices
        from .registry import singular

        import difflib

        close = difflib.get_close_matches(name.rpartition("/")[2], choices, n=1, cutoff=0.6)
        #: the registered name closest to ``name`` (None when none is close)
        self.suggestion = close[0] if close else None
        hint = f"; did you mean {self.suggestion!r}?" if self.suggestion else ""
        super().__init__(
            f"unknown {singular(kind)} {name!r}; "
            f"valid choices: {', '.join(choices) or '(none registered)'}{hint}"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class DuplicateComponentError(SandmleError):
    """Two plugins registered the same name for one kind."""


class MissingDependencyError(SandmleError):
    """An optional dependency of a component is not installed."""

    def __init__(self, package: str, extra: str | None, component: str = ""):
        hint = f"pip install 'sandmle[{extra}]'" if extra else f"pip install {package}"
        what = f" (needed by {component})" if component else ""
        super().__init__(f"missing optional dependency {package!r}{what}; install it with: {hint}")
        self.package, self.extra = package, extra


class RecipeError(SandmleError):
    """A recipe that cannot be run; carries every problem found, each with its YAML path."""

    exit_code = 2

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source, self.problems = source, problems
        lines = [f"{path}: {msg}" if path else msg for path, msg in problems]
        super().__init__(f"invalid recipe {source}:\n  " + "\n  ".join(lines))


class TaskError(SandmleError):
    """A task directory that does not hold a valid task."""

    exit_code = 2


class ContextLengthError(SandmleError):
    """A prompt that leaves no room for a reply in the model's context window.

    A local backend raises it instead of running the model past the positions it was trained on
    (and, on the engine, instead of encoding e.g. 17,000 tokens in one pass: ~11 GB of attention
    scores for SmolLM2); an OpenAI-compatible server answers the same with HTTP 400. Scaffolds end
    the episode with ``stop_reason="max_length"``: the conversation, not the harness, ran out.
    """

    def __init__(self, prompt_tokens: int, context_window: int):
        self.prompt_tokens, self.context_window = prompt_tokens, context_window
        super().__init__(f"prompt of {prompt_tokens} tokens leaves no room for a reply in the model's "
                         f"context window of {context_window} tokens")
