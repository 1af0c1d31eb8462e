"""Turn pydantic validation errors and azauth's own findings into one readable ConfigError.

Every problem is reported as ``<key path>: <what is wrong> (expected <what would work>)``, where the
key path is written the way the user would find it in the file (``profiles.ci.outputs[1].path``).
Several problems become one ConfigError listing them all, one per line. Values are echoed only
when they are short scalars that cannot be a token.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from agent.config.problems import (
    KeyPath,
    Problem,
    connection_problems,
    did_you_mean,
    format_key_path,
    looks_like_jwt,
)
from agent.exceptions import ConfigError

__all__ = [
    "PROBLEMS_ERROR_TYPE",
    "Finding",
    "KeyPath",
    "Problem",
    "config_error",
    "connection_problems",
    "describe_value",
    "did_you_mean",
    "format_key_path",
    "from_validation_error",
    "invalid",
    "looks_like_jwt",
]

# The pydantic error type our validators raise; its context carries the Problem objects.
PROBLEMS_ERROR_TYPE = "azauth_problems"

# Longer strings are not echoed: they are unlikely to help and could be something secret.
_MAX_ECHO = 60
_TYPE_WORDS = {
    "model_type": "a table (mapping of keys to values)",
    "model_attributes_type": "a table (mapping of keys to values)",
    "dict_type": "a table (mapping of keys to values)",
    "list_type": "a list",
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
}


@dataclass(frozen=True)
class Finding:
    """A problem located in the whole configuration.

    Attributes:
        key_path: the formatted key path (``profiles.ci.outputs[1].path``).
        message: what is wrong.
        expected: what would have been accepted.
        origin: where the value came from when it is not the file (``environment variable X``).
    """

    key_path: str
    message: str
    expected: str | None = None
    origin: str | None = None


def invalid(*problems: Problem) -> PydanticCustomError:
    """Return the error a validator raises to report ``problems`` with their own key paths."""
    summary = "; ".join(f"{format_key_path(p.path) or '(here)'}: {p.message}" for p in problems)
    return PydanticCustomError(
        PROBLEMS_ERROR_TYPE, "{summary}", {"summary": summary, "problems": problems}
    )


def describe_value(value: object) -> str | None:
    """Return ``value`` written for an error message, or ``None`` when it must not be echoed."""
    text: str | None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = repr(value)
    elif value is None:
        text = "an empty value"
    elif isinstance(value, str):
        text = None if len(value) > _MAX_ECHO or looks_like_jwt(value) else repr(value)
    elif isinstance(value, Mapping):
        text = "a table"
    elif isinstance(value, list | tuple):
        text = "a list"
    else:
        text = f"a {type(value).__name__}"
    return text


def config_error(findings: Sequence[Finding], *, file: str | None) -> ConfigError:
    """Return one ConfigError for ``findings`` (one line each when there are several)."""
    if len(findings) == 1:
        only = findings[0]
        if only.origin is None:
            return ConfigError(
                only.message, file=file, key_path=only.key_path or None, expected=only.expected
            )
        return ConfigError(
            f"{only.message} (set by {only.origin})",
            key_path=only.key_path or None,
            expected=only.expected,
        )
    lines = [f"{len(findings)} problems:"]
    for finding in findings:
        line = f"  {finding.key_path or '(top level)'}: {finding.message}"
        if finding.origin is not None:
            line += f" (set by {finding.origin})"
        if finding.expected:
            line += f" (expected {finding.expected})"
        lines.append(line)
    return ConfigError("\n".join(lines), file=file)


def from_validation_error(
    exc: ValidationError,
    *,
    model: type[BaseModel],
    data: Mapping[str, Any],
    file: str | None,
    origin_of: Callable[[KeyPath], str | None] = lambda _path: None,
    pattern_meanings: Mapping[str, str] | None = None,
) -> ConfigError:
    """Convert pydantic's ``exc`` into one ConfigError.

    Args:
        exc: the error raised while validating ``data`` against ``model``.
        model: the root model, used to name allowed keys and describe expected values.
        data: the merged input, used to drop pydantic's union tags from locations.
        file: the file blamed for problems whose value did not come from elsewhere.
        origin_of: names where the value at a key path came from when not from ``file``.
        pattern_meanings: regular expressions of string constraints, in words.
    """
    errors = exc.errors(include_url=False)
    # A misspelt required key shows up twice: unknown "tenantid" and missing "tenant_id". The
    # unknown key's suggestion then names the missing one, which is not reported separately.
    missing = {_align(error["loc"], data)[0] for error in errors if error["type"] == "missing"}
    explained: list[tuple[KeyPath, str, str | None]] = []
    for error in errors:
        explained.extend(_explain(error, model, data, pattern_meanings or {}, missing))
    covered = {_suggested_path(path, message) for path, message, _ in explained}
    findings: list[Finding] = []
    for path, message, expected in explained:
        if message == _MISSING and path in covered:
            continue
        finding = Finding(format_key_path(path), message, expected, origin_of(path))
        if finding not in findings:
            findings.append(finding)
    return config_error(findings, file=file)


_MISSING = "missing required key"
_SUGGESTION = re.compile(r"\(did you mean '([^']*)'\?")


def _suggested_path(path: KeyPath, message: str) -> KeyPath | None:
    """The sibling key an "unknown key" message suggests, if any."""
    found = _SUGGESTION.search(message) if message.startswith("unknown key") else None
    return (*path[:-1], found.group(1)) if found else None


def _explain(
    error: ErrorDetails,
    model: type[BaseModel],
    data: Mapping[str, Any],
    pattern_meanings: Mapping[str, str],
    missing: set[KeyPath],
) -> Iterable[tuple[KeyPath, str, str | None]]:
    """Yield ``(key path, message, expected)`` for one pydantic error."""
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    is_problems = error["type"] == PROBLEMS_ERROR_TYPE
    if "pattern" in ctx:
        pattern = str(ctx["pattern"])
        ctx["expected"] = pattern_meanings.get(pattern, f"a string matching {pattern}")
    # A problem is reported by the object that found it: the last location is no missing key.
    path, is_key = _align(error["loc"], data, keep_last=not is_problems)
    if is_problems:
        for problem in ctx["problems"]:
            yield (*path, *problem.path), problem.message, problem.expected
        return
    if is_key:
        shown = describe_value(error.get("input"))
        yield path, f"invalid name {shown}", ctx.get("expected")
        return
    container, field, annotation = _locate(model, path, data)
    structural = _explain_structure(
        error, ctx=ctx, path=path, container=container, annotation=annotation, missing=missing
    )
    yield structural if structural is not None else _explain_value(error, ctx, path, field)


def _explain_structure(
    error: ErrorDetails,
    *,
    ctx: dict[str, Any],
    path: KeyPath,
    container: type[BaseModel] | None,
    annotation: Any,
    missing: set[KeyPath],
) -> tuple[KeyPath, str, str | None] | None:
    """Explain an unknown key or a bad ``kind``; ``None`` for other errors."""
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = list(container.model_fields) if container is not None else []
        suggestion = did_you_mean(path[-1] if path else "", allowed)
        if suggestion and _suggested_path(path, "unknown key" + suggestion) in missing:
            suggestion = suggestion.replace("?)", "? it is required)")
        return (
            path,
            f"unknown key{suggestion}",
            f"one of: {', '.join(allowed)}" if allowed else None,
        )
    if kind in {"union_tag_invalid", "union_tag_not_found"}:
        tags = _union_tags(annotation)
        message = (
            f"unknown kind {ctx.get('tag')!r}{did_you_mean(ctx.get('tag'), tags)}"
            if kind == "union_tag_invalid"
            else "missing required key"
        )
        return (*path, "kind"), message, f"one of: {', '.join(tags)}"
    return None


def _explain_value(
    error: ErrorDetails, ctx: dict[str, Any], path: KeyPath, field: FieldInfo | None
) -> tuple[KeyPath, str, str | None]:
    """Explain a missing or wrong value."""
    kind = error["type"]
    invalid_value = f"invalid value {describe_value(error.get('input'))}"
    message, expected = error["msg"], _field_words(field)
    if kind == "missing":
        message = _MISSING
    elif kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        message = invalid_value + did_you_mean(error.get("input"), options)
        expected = str(ctx.get("expected"))
    elif kind == "string_pattern_mismatch":
        message, expected = invalid_value, str(ctx["expected"])
    elif "expected" in ctx:
        expected = str(ctx["expected"])
    elif kind in _TYPE_WORDS:
        message = f"wrong type: got {describe_value(error.get('input'))}"
        expected = _TYPE_WORDS[kind]
    elif kind in {"string_too_short", "too_short"}:
        message = "must not be empty"
    elif message.startswith("Input should be "):
        message, expected = invalid_value, message.removeprefix("Input should be ")
    else:
        message = message[:1].lower() + message[1:]
    return path, message, expected


def _align(
    loc: tuple[str | int, ...], data: Any, *, keep_last: bool = True
) -> tuple[KeyPath, bool]:
    """Map pydantic's ``loc`` onto the keys of ``data``.

    pydantic inserts the tag of a discriminated union into locations (``outputs.1.token_file.path``)
    and marks dict-key errors with ``[key]``; neither is a key the user wrote. The last element is
    kept even when absent from the data: it is the missing key.
    """
    items = list(loc)
    is_key = bool(items) and items[-1] == "[key]"
    if is_key:
        items.pop()
    path: list[str | int] = []
    node = data
    for index, part in enumerate(items):
        present = (isinstance(node, Mapping) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if present:
            path.append(part)
            node = node[part]
        elif keep_last and index == len(items) - 1:
            path.append(part)
    return tuple(path), is_key


def _locate(
    model: type[BaseModel], path: KeyPath, data: Any
) -> tuple[type[BaseModel] | None, FieldInfo | None, Any]:
    """Return the model holding the last key of ``path``, that key's field and its annotation."""
    annotation: Any = model
    container: type[BaseModel] | None = None
    field: FieldInfo | None = None
    node: Any = data
    for part in path:
        annotation = _narrow(annotation, node)
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            container = annotation
            field = annotation.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return container, None, None
            annotation = field.annotation
        elif origin is dict:
            annotation = get_args(annotation)[1]
        elif origin is list:
            annotation = get_args(annotation)[0]
        else:
            return container, field, None
        node = _child(node, part)
    return container, field, _narrow(annotation, node, pick=False)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, Mapping):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _narrow(annotation: Any, node: Any, *, pick: bool = True) -> Any:
    """Strip ``Annotated`` and ``None``; pick the union member whose ``kind`` matches ``node``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in {Union, types.UnionType}:
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
            if pick and isinstance(node, Mapping):
                for member in members:
                    if node.get("kind") in _union_tags(member):
                        annotation = member
                        break
                else:
                    return annotation
                continue
        return annotation


def _union_tags(annotation: Any) -> list[str]:
    """Return the ``kind`` values of the models in ``annotation`` (a union or one model)."""
    annotation = _narrow(annotation, None, pick=False)
    members = get_args(annotation) if get_origin(annotation) in {Union, types.UnionType} else ()
    tags: list[str] = []
    for member in members or (annotation,):
        if isinstance(member, type) and issubclass(member, BaseModel):
            kind = member.model_fields.get("kind")
            if kind is not None and get_origin(kind.annotation) is Literal:
                tags.extend(str(arg) for arg in get_args(kind.annotation))
    return tags


def _field_words(field: FieldInfo | None) -> str | None:
    """Return the field's description, which is written to read as "expected <description>"."""
    if field is None or not field.description:
        return None
    # Descriptions are sentences in the schema ("The tenant ..."); mid-message they start lower.
    text = field.description.split("\n", 1)[0].rstrip(".")
    if len(text) > 1 and text[1].islower():
        text = text[0].lower() + text[1:]
    return text
