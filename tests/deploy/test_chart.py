"""The Helm chart's files: its metadata, its values, their documentation, its templates' references.

Helm renders a value a template reads but values.yaml lacks as nothing, without complaint: so
these tests read the files themselves. The YAML parses, every `.Values` path a template reads
exists, every value is documented with its true default, and template blocks balance. What the
rendered objects are is checked in test_chart_render.py, through Helm's own engine.
"""

from __future__ import annotations

import json
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from consentry.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "consentry"
TEMPLATES = sorted((CHART / "templates").rglob("*.yaml")) + sorted(
    (CHART / "templates").glob("*.tpl")
)
# Built-in objects of a template's root context; only `.Values` comes from values.yaml.
BUILTINS = {"Chart", "Release", "Template", "Capabilities", "Files"}
BLOCK_OPENERS = {"if", "with", "range", "define", "block"}
UNKNOWN = object()  # the context inside a range over an empty list: its fields cannot be checked


def _values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    return values


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """Every value a user can set, by path: scalars, scalar lists and empty maps are leaves."""
    if isinstance(node, dict) and node:
        found: dict[str, Any] = {}
        for key, value in node.items():
            found.update(_leaves(value, f"{prefix}.{key}" if prefix else key))
        return found
    if isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
        found = {}
        for index, item in enumerate(node):
            found.update(_leaves(item, f"{prefix}[{index}]"))
        return found
    return {prefix: node}


def _documented() -> dict[str, str]:
    """The README's table of values: path → the default column's text."""
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]*)` \|", readme, re.M)
    return dict(rows)


# --- Reading templates ------------------------------------------------------------------------

ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
# `.a.b`, `$.a.b` or `$var.a.b`, not preceded by a name or a closing bracket.
FIELD = re.compile(r"(?<![\w)\]])(\$\w*)?((?:\.[A-Za-z_]\w*)+)")


def _actions(text: str) -> list[str]:
    """The template actions of a file, without trim markers, comments or string literals."""
    found = []
    for raw in ACTION.findall(text):
        action = raw.strip().removeprefix("-").removesuffix("-").strip()
        if action.startswith("/*"):
            continue
        found.append(STRING.sub('""', action))
    return found


def _keyword(action: str) -> str:
    word = action.split(maxsplit=1)[0] if action else ""
    return word if word in BLOCK_OPENERS | {"else", "end"} else ""


@dataclass
class Scope:
    """What `.` is in a block: the root (None), a node of values.yaml, or UNKNOWN."""

    keyword: str
    context: Any
    outer: Any = None
    problems: list[str] = field(default_factory=list)


def _lookup(node: Any, path: list[str]) -> tuple[bool, Any]:
    for name in path:
        if not isinstance(node, dict) or name not in node:
            return False, None
        node = node[name]
    return True, node


def _element(node: Any) -> Any:
    """The context inside `range` over `node`: its first element, when there is one to check."""
    if isinstance(node, list) and node:
        return node[0]
    if isinstance(node, dict) and node:
        return next(iter(node.values()))
    return UNKNOWN


def _resolve(values: dict[str, Any], context: Any, prefix: str, path: list[str]) -> str | None:
    """Check one field reference; returns a problem, or None."""
    if prefix and prefix != "$":
        return None  # a variable: `$name.field`
    if prefix == "$" or context is None:
        if path[0] in BUILTINS:
            return None
        if path[0] != "Values":
            return f"`.{'.'.join(path)}` is not a field of the root context"
        found, _ = _lookup(values, path[1:])
        return None if found else f"`.{'.'.join(path)}` is not in values.yaml"
    if path[0] == "Values":
        return f"`.{'.'.join(path)}` inside with/range: `.` is not the root there (use `$`)"
    if context is UNKNOWN:
        return None
    found, _ = _lookup(context, path)
    return None if found else f"`.{'.'.join(path)}` is not a field of {context!r}"


def _check_template(text: str, values: dict[str, Any]) -> list[str]:
    """Every problem of one template: unbalanced blocks and references to missing values."""
    problems = []
    if text.count("{{") != text.count("}}"):
        problems.append("`{{` and `}}` do not pair up")
    stack: list[Scope] = []
    for action in _actions(text):
        keyword = _keyword(action)
        context = stack[-1].context if stack else None
        if keyword == "end":
            if not stack:
                problems.append("an `end` closes nothing")
            else:
                stack.pop()
            continue
        if keyword == "else" and stack:
            # The else branch of `with`/`range` runs with the context from outside the block.
            stack[-1].context = stack[-1].outer
            context = stack[-1].outer
        pipeline = action
        for match in FIELD.finditer(pipeline):
            prefix, dotted = match.group(1) or "", match.group(2)
            problem = _resolve(values, context, prefix, dotted[1:].split("."))
            if problem:
                problems.append(problem)
        if keyword in BLOCK_OPENERS:
            inner = context
            if keyword == "define":
                inner = None
            elif keyword in {"with", "range"}:
                inner = _block_context(values, context, pipeline, keyword)
            stack.append(Scope(keyword, inner, outer=context))
    if stack:
        problems.append(f"{len(stack)} block(s) left open: {[s.keyword for s in stack]}")
    return problems


def _block_context(values: dict[str, Any], context: Any, pipeline: str, keyword: str) -> Any:
    """What `.` becomes inside `with X` or `range [$k, $v :=] X`, for a plain field X."""
    target = pipeline.split(":=")[-1] if ":=" in pipeline else pipeline.split(maxsplit=1)[1]
    match = re.fullmatch(r"\s*(\$?)((?:\.[A-Za-z_]\w*)+|\.)\s*", target)
    if not match:
        return UNKNOWN
    prefix, dotted = match.groups()
    if dotted == ".":
        node = context
    else:
        path = dotted[1:].split(".")
        base = values if (prefix or context is None) and path[0] == "Values" else context
        if base is values:
            path = path[1:]
        if base is UNKNOWN or base is None:
            return UNKNOWN
        found, node = _lookup(base, path)
        if not found:
            return UNKNOWN
    return _element(node) if keyword == "range" else node


# --- The tests --------------------------------------------------------------------------------


def test_chart_metadata_names_the_project_release() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "consentry"
    assert chart["type"] == "application"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    assert chart["appVersion"] == project["version"]


def test_values_parse_into_the_sections_the_templates_read() -> None:
    values = _values()
    for section in ("image", "secret", "config", "server", "autoscaling", "migration", "worker"):
        assert isinstance(values[section], dict), section
    assert values["config"]["CONSENTRY_ENV"] == "production"
    # Every setting is a string: a ConfigMap holds nothing else.
    assert all(isinstance(v, str) for v in values["config"].values())


def test_config_holds_settings_the_service_takes_at_its_own_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _values()["config"]
    known = {f"CONSENTRY_{name.upper()}" for name in Settings.model_fields}
    assert sorted(set(config) - known) == [], "config names settings the service does not have"
    for name, value in config.items():
        monkeypatch.setenv(name, value)
    # What the Secret holds; the rest must start the service as the chart writes it.
    monkeypatch.setenv("CONSENTRY_PSEUDONYM_KEY", secrets.token_urlsafe(48))
    monkeypatch.setenv("CONSENTRY_JWT_SECRET", secrets.token_urlsafe(48))
    settings = Settings()
    # Only production differs on purpose: a chart that restated any other default differently
    # would override the service's own choice without saying so.
    for name in sorted(set(config) - {"CONSENTRY_ENV"}):
        field = name.removeprefix("CONSENTRY_").lower()
        default = Settings.model_fields[field].get_default(call_default_factory=True)
        assert getattr(settings, field) == default, f"the chart gives {name} {config[name]!r}"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(CHART)))
def test_template_reads_only_values_that_exist_and_balances_its_blocks(path: Path) -> None:
    assert _check_template(path.read_text(encoding="utf-8"), _values()) == []


def test_the_reference_check_finds_what_it_is_meant_to_find() -> None:
    values = {"a": {"b": 1, "items": [{"x": 1}]}, "empty": []}
    broken = (
        "{{ .Values.a.c }}{{- if .Values.a.b }}"
        "{{ with .Values.a }}{{ .b }}{{ .nope }}{{ .Values.a }}{{ $.Values.a.b }}{{ end }}"
        "{{ range .Values.a.items }}{{ .x }}{{ .y }}{{ end }}"
        "{{ range .Values.empty }}{{ .anything }}{{ .Values.a }}{{ end }}"
        "{{ with .Values.a }}{{ else }}{{ .Values.a.b }}{{ end }}"
    )
    problems = _check_template(broken, values)
    assert problems == [
        "`.Values.a.c` is not in values.yaml",
        "`.nope` is not a field of {'b': 1, 'items': [{'x': 1}]}",
        "`.Values.a` inside with/range: `.` is not the root there (use `$`)",
        "`.y` is not a field of {'x': 1}",
        "`.Values.a` inside with/range: `.` is not the root there (use `$`)",
        "1 block(s) left open: ['if']",
    ]
    assert _check_template("{{ end }}{{ if .Values.a.b }}", values) == [
        "an `end` closes nothing",
        "1 block(s) left open: ['if']",
    ]


def test_every_value_is_documented_with_its_default() -> None:
    leaves = _leaves(_values())
    documented = _documented()
    assert sorted(set(leaves) - set(documented)) == [], "values missing from README.md"
    assert sorted(set(documented) - set(leaves)) == [], "README.md documents values that are gone"
    for path, default in documented.items():
        assert json.loads(default) == leaves[path], f"README.md gives {path} the default {default}"
