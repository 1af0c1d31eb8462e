"""Strict YAML parsing of profile files (PyYAML), imported only when a YAML file is loaded.

Duplicate keys are refused; nesting and alias expansion are bounded before anything is built
(:data:`agent.config.loading.MAX_DEPTH`, :data:`agent.config.loading.MAX_NODES`); every failure
is a :class:`ConfigError` naming the file, line and column.
"""

from __future__ import annotations

from typing import Any

import yaml

from agent.config.loading import _BOUNDS_EXPECTED, MAX_DEPTH, MAX_NODES
from agent.exceptions import ConfigError

__all__ = ["check_yaml_bounds", "parse_yaml"]


class _StrictYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key that appears twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {first + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


class _YamlBounds:
    """Measure nesting and alias expansion from the event stream, before anything is built.

    PyYAML's composer and constructor recurse per level (a RecursionError at a few thousand), and
    nested aliases (``b: [*a, *a, ...]``) multiply: a 400-byte file can stand for billions of
    values. The event parser is iterative, so this pass is linear in the file's size.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.sizes: dict[str | None, tuple[int, int]] = {}  # anchor -> (values, depth)
        self.stack: list[list[Any]] = []  # open collections: [anchor, values, depth below]
        self.total = 0

    def error(self, mark: Any, what: str) -> ConfigError:
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        return ConfigError(f"{where}{what}", file=self.file, expected=_BOUNDS_EXPECTED)

    def add(self, values: int, depth: int, mark: Any) -> None:
        self.total += values
        if self.total > MAX_NODES:
            raise self.error(mark, f"the YAML expands to more than {MAX_NODES} values (aliases)")
        if len(self.stack) + depth > MAX_DEPTH:
            raise self.error(mark, f"nested more than {MAX_DEPTH} levels deep")
        if self.stack:
            self.stack[-1][1] += values
            self.stack[-1][2] = max(self.stack[-1][2], depth)

    def event(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.CollectionStartEvent):
            self.stack.append([event.anchor, 1, 0])
            if len(self.stack) > MAX_DEPTH:
                raise self.error(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, values, depth = self.stack.pop()
            if anchor is not None:
                self.sizes[anchor] = (values, depth + 1)
            if self.stack:
                self.stack[-1][1] += values
                self.stack[-1][2] = max(self.stack[-1][2], depth + 1)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                self.sizes[event.anchor] = (1, 0)
            self.add(1, 0, event.start_mark)
        elif isinstance(event, yaml.AliasEvent):
            if any(entry[0] == event.anchor for entry in self.stack):
                raise self.error(
                    event.start_mark,
                    f"alias *{event.anchor} refers to the node that contains it (recursive)",
                )
            values, depth = self.sizes.get(event.anchor, (1, 0))
            self.add(values, depth, event.start_mark)


def check_yaml_bounds(text: str, file: str) -> None:
    """Refuse YAML too deep or too big once aliases are expanded (see :class:`_YamlBounds`).

    Raises:
        ConfigError: too deep, too many values after expansion, or an alias inside its anchor.
    """
    bounds = _YamlBounds(file)
    try:
        for event in yaml.parse(text, Loader=_StrictYamlLoader):
            bounds.event(event)
    except yaml.YAMLError:
        return  # the loader reports syntax errors with their position


def parse_yaml(text: str, file: str) -> object:
    """Parse ``text`` strictly (bounded, no duplicate keys); raise ConfigError naming ``file``."""
    check_yaml_bounds(text, file)
    try:
        return yaml.load(text, Loader=_StrictYamlLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        reason = exc.problem or exc.context or "invalid syntax"
        raise ConfigError(
            f"{where}invalid YAML: {reason}", file=file, expected="YAML syntax (https://yaml.org)"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file, expected="YAML syntax") from None
