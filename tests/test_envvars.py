"""agent.envvars names every environment variable once; enumerations are declared once."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import get_args

from agent import envvars

AGENT = Path(__file__).resolve().parent.parent / "agent"
SOURCE = AGENT / "envvars.py"


def _constants() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(envvars).items()
        if name.isupper() and isinstance(value, str)
    }


def test_every_variable_is_its_own_name_with_a_docstring():
    """A grep for a variable's name finds its one definition, which says what azauth does."""
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"))
    documented = set()
    body = tree.body
    for node, following in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
            and following.value.value.strip()
        ):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            assert isinstance(target, ast.Name)
            documented.add(target.id)
    constants = _constants()
    for name, value in constants.items():
        if not name.endswith("_PREFIX"):
            assert value == name, name
        assert name in documented, f"{name} has no docstring"
    assert len(constants) > 60


def test_no_module_types_a_variable_name_again():
    """Outside agent/envvars.py, no string literal of agent/ is exactly a variable's name."""
    names = {value for name, value in _constants().items() if not name.endswith("_PREFIX")}
    found = []
    for path in AGENT.rglob("*.py"):
        if path == SOURCE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(AGENT)}:{node.lineno}: {node.value}")
    # __all__ entries and argparse metavars happen to share a few names; nothing else may.
    allowed = {"PATH"}
    assert [f for f in found if f.rsplit(": ", 1)[1] not in allowed] == []


def test_envvars_imports_nothing():
    """The warm path imports it: no module is loaded by importing it."""
    code = (
        "import sys, agent; before = set(sys.modules); import agent.envvars; "
        "print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['agent.envvars']"


def test_each_enumeration_is_declared_once():
    """The config models validate with the very Literal the renderers enumerate."""
    from agent.clouds import CLOUDS, CloudName
    from agent.config import models
    from agent.logs import LOG_FORMATS, LOG_LEVELS
    from agent.outputs.env_file import DIALECTS
    from agent.outputs.presets import PRESETS
    from agent.outputs.token_file import TOKEN_FILE_FORMATS

    fields = models.EnvFileOutput.model_fields
    assert get_args(fields["preset"].annotation)[0] is models.Preset
    assert get_args(models.Preset) == PRESETS
    assert get_args(fields["dialect"].annotation) == DIALECTS
    assert get_args(models.TokenFileOutput.model_fields["format"].annotation) == (
        TOKEN_FILE_FORMATS
    )
    settings = models.Settings.model_fields
    assert get_args(settings["log_format"].annotation) == LOG_FORMATS
    assert get_args(settings["log_level"].annotation) == LOG_LEVELS
    assert get_args(CloudName) == tuple(CLOUDS)
