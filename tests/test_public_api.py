"""The curated public API: every exported name resolves, lazily, to the documented object."""

from __future__ import annotations

import subprocess
import sys

import azure.core.exceptions
import pytest

import agent


def test_every_exported_name_resolves():
    for name in agent.__all__:
        assert getattr(agent, name) is not None, name
    assert sorted(agent.__all__) == agent.__all__
    assert set(dir(agent)) == set(agent.__all__)


def test_importing_the_package_loads_no_dependency():
    code = "import sys, agent; print(sorted(m for m in sys.modules if m.split('.')[0] in {'aiohttp', 'pydantic', 'structlog', 'azure', 'yaml'}))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert out.strip() == "[]"


def test_exceptions_fit_the_azure_sdk_hierarchy():
    assert issubclass(agent.AuthenticationError, azure.core.exceptions.ClientAuthenticationError)
    assert issubclass(agent.CredentialUnavailableError, agent.AuthenticationError)
    for cls in (agent.OidcRequestError, agent.EntraError, agent.TransportError):
        assert issubclass(cls, agent.AuthenticationError)
    assert issubclass(agent.ProxyAuthenticationError, agent.TransportError)
    assert agent.ProxyAuthenticationError.retryable is False
    assert issubclass(agent.ConfigError, agent.AzauthError)
    assert {int(code) for code in agent.ExitCode} == {0, 1, 2, 3, 4, 5, 6}


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="NoSuchThing"):
        agent.NoSuchThing  # noqa: B018
