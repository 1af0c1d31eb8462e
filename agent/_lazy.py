"""Lazy package exports: a name is imported from its module the first time it is used.

Packages use it so that importing them (which every ``azauth`` process does) costs nothing
until a name is needed. Stdlib only.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not from typing: see agent/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, namespace: dict[str, object], locations: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package`` exporting ``locations`` (name -> module).

    A resolved name is stored in ``namespace`` (the package's globals), so the lookup happens
    once per name.
    """

    def __getattr__(name: str) -> object:  # noqa: N807 - becomes the module's __getattr__
        module = locations.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        __import__(module)  # not importlib.import_module: importlib costs every process an import
        value: object = getattr(sys.modules[module], name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807 - becomes the module's __dir__
        return sorted(locations)

    return __getattr__, __dir__
