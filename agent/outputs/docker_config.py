"""Render a Docker ``config.json`` for container registries, merged into an existing one.

Source: docker/cli ``cli/config/configfile/file.go`` (``auths``, ``credHelpers``, ``auth`` as
base64 ``user:password``, ``identitytoken``) and containers/image's ``containers-auth.json(5)``,
which reads the same two keys (``REGISTRY_AUTH_FILE``).

Two modes:

- ``credHelpers``: ``"credHelpers": {"<registry>": "azauth"}``, so the tool runs
  ``docker-credential-azauth`` for each registry and always gets a fresh token;
- ``auths``: ``"auths": {"<registry>": {"auth": base64("00000000-0000-0000-0000-000000000000:"),
  "identitytoken": "<ACR refresh token>"}}`` for tools that run no helper; the tool trades the
  identity token at the registry's ``/oauth2/token`` itself.

Every other key and every other registry's entry of the existing file is kept. A registry
written in one mode loses its entry of the other mode (a ``credHelpers`` entry would take
precedence over a fresh ``auths`` entry). Pure: the caller reads the old bytes and writes the
new ones atomically.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from agent.credential_helpers.docker import ACR_USERNAME

__all__ = ["HELPER_SUFFIX", "remove_registries", "render_docker_config", "users_entries"]

HELPER_SUFFIX = "azauth"
"""The ``credHelpers`` value naming ``docker-credential-azauth``."""


def render_docker_config(
    existing: bytes | None,
    *,
    cred_helpers: list[str] | tuple[str, ...] = (),
    identity_tokens: Mapping[str, str] | None = None,
) -> bytes:
    """The new ``config.json``: ``existing`` (or ``{}``) with these registries' entries set.

    Args:
        existing: the current file's bytes, or ``None`` when there is none (empty counts as none).
        cred_helpers: registries to point at ``docker-credential-azauth``.
        identity_tokens: registry -> ACR refresh token, written as ``auths`` entries.

    Raises:
        ValueError: the existing file is not a JSON object (or its ``auths``/``credHelpers`` are
            not objects): it is never overwritten; or a token contains whitespace.
    """
    document = _parse(existing)
    helpers = _section(document, "credHelpers")
    auths = _section(document, "auths")
    for registry in cred_helpers:
        helpers[registry] = HELPER_SUFFIX
        auths.pop(registry, None)
    basic = base64.b64encode(f"{ACR_USERNAME}:".encode()).decode()
    for registry, token in (identity_tokens or {}).items():
        if not token or any(ch.isspace() for ch in token):
            raise ValueError(f"the refresh token of {registry} is empty or contains whitespace")
        entry = auths.get(registry)
        entry = dict(entry) if isinstance(entry, dict) else {}
        entry.update({"auth": basic, "identitytoken": token})
        auths[registry] = entry
        helpers.pop(registry, None)
    for name, section in (("credHelpers", helpers), ("auths", auths)):
        if section:
            document[name] = section
        else:
            document.pop(name, None)
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def _parse(existing: bytes | None) -> dict[str, object]:
    if existing is None or not existing.strip():
        return {}
    try:
        document = json.loads(existing.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # Recursion: nested too deeply
        raise ValueError("the existing file is not JSON; refusing to overwrite it") from None
    if not isinstance(document, dict):
        raise ValueError("the existing file is not a JSON object; refusing to overwrite it")  # noqa: TRY004
    return document


def _section(document: dict[str, object], name: str) -> dict[str, object]:
    section = document.get(name, {})
    if not isinstance(section, dict):
        raise ValueError(f"the existing file's {name} is not an object; refusing to overwrite it")  # noqa: TRY004
    return dict(section)


Entries = dict[str, dict[str, object]]
"""``{"credHelpers": {registry: value}, "auths": {registry: entry}}``."""


def users_entries(existing: bytes | None, registries: list[str] | tuple[str, ...]) -> Entries:
    """The entries ``existing`` has for ``registries`` that azauth did not write.

    Taken before azauth's first write, so that ``remove_on_exit`` can put them back. A
    ``credHelpers`` entry naming ``azauth``, and an ``auths`` entry with the null-GUID user
    and an identity token (an ACR refresh token, as azauth writes it), are azauth's own,
    left by an earlier run: they are not kept.

    Raises:
        ValueError: the file is not a Docker config.
    """
    document = _parse(existing)
    helpers = _section(document, "credHelpers")
    auths = _section(document, "auths")
    basic = base64.b64encode(f"{ACR_USERNAME}:".encode()).decode()
    kept: Entries = {"credHelpers": {}, "auths": {}}
    for registry in registries:
        helper = helpers.get(registry)
        if registry in helpers and helper != HELPER_SUFFIX:
            kept["credHelpers"][registry] = helper
        entry = auths.get(registry)
        ours = isinstance(entry, dict) and entry.get("auth") == basic and "identitytoken" in entry
        if registry in auths and not ours:
            kept["auths"][registry] = entry
    return kept


def remove_registries(
    existing: bytes, registries: list[str] | tuple[str, ...], restore: Entries | None = None
) -> bytes | None:
    """``existing`` without these registries' entries; ``None`` when nothing else is left.

    What ``remove_on_exit`` writes back: the user's own entries and keys stay, and the entries
    the user had for these registries before azauth wrote its own (``restore``, from
    :func:`users_entries`) come back.

    Raises:
        ValueError: the file is not a Docker config (it is then left alone).
    """
    document = _parse(existing)
    for name in ("credHelpers", "auths"):
        section = _section(document, name)
        for registry in registries:
            section.pop(registry, None)
        section.update((restore or {}).get(name, {}))
        if section:
            document[name] = section
        else:
            document.pop(name, None)
    if not document:
        return None
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")
