"""Registry: names, qualified lookups, duplicates, config validation, missing extras."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from sandmle.core.errors import DuplicateComponentError, MissingDependencyError, UnknownComponentError
from sandmle.core.registry import Registry, require


class _Cfg(BaseModel, extra="forbid"):
    size: int = 3


def _registry_with(*plugins: str) -> Registry:
    reg = Registry()
    for plugin in plugins:
        reg.registrar("graders", plugin)(f"g-{plugin}", lambda cfg: ("built", cfg.size), config=_Cfg)
    return reg


def test_lookup_by_name_and_qualified_name():
    reg = _registry_with("alpha", "beta")
    assert reg.get("graders", "g-alpha").plugin == "alpha"
    assert reg.get("graders", "alpha/g-alpha").name == "g-alpha"
    with pytest.raises(UnknownComponentError):
        reg.get("graders", "beta/g-alpha")  # registered, but by another plugin


def test_unknown_name_lists_valid_choices():
    reg = _registry_with("alpha", "beta")
    with pytest.raises(UnknownComponentError) as err:
        reg.get("graders", "nope")
    assert "g-alpha, g-beta" in str(err.value)
    assert err.value.choices == ["g-alpha", "g-beta"]


def test_clashing_names_refuse_the_bare_name_naming_both_plugins_and_the_fix():
    reg = Registry()
    reg.registrar("scaffolds", "first-plugin")("react", lambda cfg: "first")
    reg.registrar("scaffolds", "second-plugin")("react", lambda cfg: "second")  # no error yet
    reg.registrar("scaffolds", "first-plugin")("other", lambda cfg: "other")
    with pytest.raises(DuplicateComponentError) as err:
        reg.get("scaffolds", "react")
    msg = str(err.value)
    assert "'first-plugin'" in msg and "'second-plugin'" in msg
    assert "'first-plugin/react' or 'second-plugin/react'" in msg
    assert "SANDMLE_BLOCK_PLUGINS=second-plugin" in msg
    # qualified names still resolve, other names of the kind are untouched
    assert reg.create("scaffolds", "second-plugin/react") == "second"
    assert reg.create("scaffolds", "first-plugin/react") == "first"
    assert reg.create("scaffolds", "other") == "other"
    assert [(i.name, i.plugin) for i in reg.entries("scaffolds")] == [
        ("other", "first-plugin"), ("react", "first-plugin"), ("react", "second-plugin")]


def test_one_plugin_registering_a_name_twice_is_a_bug_in_that_plugin():
    reg = Registry()
    reg.registrar("graders", "p")("x", lambda cfg: None)
    with pytest.raises(ValueError, match="registers grader 'x' twice"):
        reg.registrar("graders", "p")("x", lambda cfg: None)


def test_same_name_in_different_kinds_is_fine():
    reg = Registry()
    reg.registrar("scaffolds", "p")("x", lambda cfg: None)
    reg.registrar("graders", "p")("x", lambda cfg: None)
    assert reg.names("scaffolds") == reg.names("graders") == ["x"]


def test_create_validates_args_against_config_model():
    reg = _registry_with("alpha")
    assert reg.create("graders", "g-alpha", {"size": 7}) == ("built", 7)
    assert reg.create("graders", "g-alpha") == ("built", 3)
    with pytest.raises(ValidationError):
        reg.create("graders", "g-alpha", {"size": "big"})
    with pytest.raises(ValidationError):
        reg.create("graders", "g-alpha", {"colour": "red"})


def test_unknown_kind_and_slash_names_are_refused():
    reg = Registry()
    with pytest.raises(ValueError, match="unknown component kind"):
        reg.get("widgets", "x")
    with pytest.raises(ValueError, match="may not contain"):
        reg.registrar("graders", "p")("a/b", lambda cfg: None)


def test_deferred_import_failure_names_the_extra():
    reg = Registry()

    def factory(cfg):
        import sandmle_not_installed_dependency  # noqa: F401

    reg.registrar("trainers", "heavy")("big", factory, extra="verl")
    with pytest.raises(MissingDependencyError) as err:
        reg.create("trainers", "big")
    assert "pip install 'sandmle[verl]'" in str(err.value)
    assert "sandmle_not_installed_dependency" in str(err.value)
    with pytest.raises(MissingDependencyError, match=r"sandmle\[ray\]"):
        require("sandmle_not_installed_dependency.sub", extra="ray")
