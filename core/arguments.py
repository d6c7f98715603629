"""Component arguments from recipes and from the command line, validated the same way.

A recipe's ``{name: react, args: {...}}`` and ``sandmle rollout --args '{...}'`` reach the same
config model and produce the same one-screen message for the same mistake::

    alpah: unknown argument for scaffold 'react' (did you mean 'alpha'?); valid arguments: ...

Nested config models (``limits: {max_llm_calls: 3}``) are followed, so a misspelled key inside
them lists the nested model's keys.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from typing import Any

import click
from pydantic import BaseModel, ValidationError

from .errors import DuplicateComponentError, SandmleError, UnknownComponentError
from .registry import ComponentInfo, Registry, singular

Problem = tuple[str, str]


class ArgumentError(SandmleError):
    """Arguments given on the command line that a component's config model refuses."""

    exit_code = 2

    def __init__(self, where: str, problems: list[Problem]):
        self.where, self.problems = where, problems
        lines = [f"{path}: {msg}" if path else msg for path, msg in problems]
        super().__init__(f"invalid {where}:\n  " + "\n  ".join(lines))


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``Limits``, ``Limits | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
    return None


def model_at(model: type[BaseModel], names: list[str]) -> type[BaseModel] | None:
    """The config model that the mapping at ``names`` (field names from the top) is checked by."""
    for name in names:
        field = model.model_fields.get(name)
        nested = _nested_model(field.annotation) if field is not None else None
        if nested is None:
            return None
        model = nested
    return model


def unknown_key_message(key: str, valid: list[str], what: str) -> str:
    """``unknown <what> (did you mean 'x'?); valid <what>s: a, b`` with the closest valid key."""
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what}{hint}; valid {what}s: {', '.join(sorted(valid)) or '(none)'}"


def argument_problems(err: ValidationError, info: ComponentInfo, prefix: str = "") -> list[Problem]:
    """Every problem of a config validation, each with its path below ``prefix``."""
    from .recipe import _problems

    def unknown(loc: tuple[Any, ...]) -> str:
        model = model_at(info.config, [p for p in loc[:-1] if isinstance(p, str)])
        valid = sorted(model.model_fields) if model is not None else []
        return unknown_key_message(str(loc[-1]), valid, "argument").replace(
            "unknown argument", f"unknown argument for {singular(info.kind)} {info.name!r}", 1)

    return _problems(err, prefix, on_extra=unknown)


def parse_json_object(text: str | None, option: str) -> dict[str, Any]:
    """The JSON object given to ``option`` (empty when ``text`` is empty)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ArgumentError(option, [("", f"not valid JSON: {exc} (got {text!r})")]) from None
    if not isinstance(value, dict):
        raise ArgumentError(option, [("", f"must be a JSON object like '{{\"key\": 1}}', got {text!r}")])
    return value


def lookup(registry: Registry, kind: str, name: str, option: str) -> ComponentInfo:
    """``registry.get`` with its errors phrased for the command-line option that named it."""
    try:
        return registry.get(kind, name)
    except (UnknownComponentError, DuplicateComponentError) as exc:
        raise ArgumentError(option, [("", str(exc))]) from None


def validate_args(registry: Registry, kind: str, name: str, args_json: str | dict[str, Any] | None = None, *,
                  name_option: str, args_option: str) -> tuple[ComponentInfo, BaseModel]:
    """Look component ``name`` of ``kind`` up and validate its arguments (JSON text, or a dict a
    command already parsed with :func:`parse_json_object` and completed from other options),
    building nothing: bad JSON, unknown names and arguments the config model refuses are
    :class:`ArgumentError` s (exit code 2, no traceback), worded as for recipes."""
    info = lookup(registry, kind, name, name_option)
    args = args_json if isinstance(args_json, dict) else parse_json_object(args_json, args_option)
    try:
        return info, info.config.model_validate(args)
    except ValidationError as err:
        raise ArgumentError(f"{args_option} for {singular(kind)} {name!r}",
                            argument_problems(err, info)) from None


def build_component(registry: Registry, kind: str, name: str, args_json: str | dict[str, Any] | None = None, *,
                    name_option: str, args_option: str) -> Any:
    """:func:`validate_args`, then build the component."""
    info, config = validate_args(registry, kind, name, args_json, name_option=name_option,
                                 args_option=args_option)
    return info.build(config)


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses ``nan`` and ``inf`` (every comparison with NaN is
    False, so FloatRange lets it through and it failed only after the whole run)."""

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number
