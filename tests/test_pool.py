"""The credential pool: one per profile, one HTTP session, the profile's settings on every credential."""

from __future__ import annotations

import os

import aiohttp
import pytest

from agent.config import Connection, ResolvedProfile, Settings
from agent.exceptions import ConfigError, UsageError
from agent.pool import ConnectionChoiceError, CredentialPool, choose_connection
from agent.testing.emulator import Emulator

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "11111111-2222-3333-4444-555555555555"
SC = "00000000-aaaa-bbbb-cccc-000000000001"
SC2 = "00000000-aaaa-bbbb-cccc-000000000002"
PROD = Connection(tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC)
OTHER = Connection(tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC2)


class TestCredentials:
    async def test_every_credential_shares_the_session_and_fetches_through_it(
        self, connected_emulator: Emulator
    ) -> None:
        """Two connections, one session: both credentials get tokens; close() closes it."""
        connected_emulator.add_connection(SC2, TENANT, CLIENT)
        pool = CredentialPool({"prod": PROD, "other": OTHER}, env=dict(_environ()))
        credentials = pool.build()
        session = pool.session

        for credential in credentials.values():
            await credential.get_token("https://management.azure.com/.default")

        assert pool.credential("prod") is credentials["prod"]
        assert set(pool.credentials) == {"prod", "other"}
        assert connected_emulator.counts["token"] == 2
        await pool.close()
        assert session.closed

    async def test_the_profile_retry_deadline_is_the_pool_policy(self) -> None:
        pool = CredentialPool({"prod": PROD}, env={}, settings=Settings(retry_deadline=7))
        default = CredentialPool({"prod": PROD}, env={})

        assert pool.retry.deadline == 7
        assert default.retry.deadline == Settings().retry_deadline == 120

    async def test_a_caller_session_is_left_open(self, connected_emulator: Emulator) -> None:
        async with aiohttp.ClientSession() as own:
            async with CredentialPool({"prod": PROD}, env=dict(_environ()), session=own) as pool:
                await pool.credential("prod").get_token("https://management.azure.com/.default")
                assert pool.session is own
            assert not own.closed

    async def test_a_missing_job_variable_fails_when_building(self) -> None:
        """SYSTEM_OIDCREQUESTURI unset: ConfigError naming it, before any request."""
        pool = CredentialPool({"prod": PROD}, env={"SYSTEM_ACCESSTOKEN": "x"})
        with pytest.raises(ConfigError, match="SYSTEM_OIDCREQUESTURI"):
            pool.build()
        await pool.close()


class TestChooseConnection:
    def test_the_named_or_the_only_connection(self) -> None:
        single = _profile({"prod": PROD})
        both = _profile({"prod": PROD, "other": OTHER})

        assert choose_connection(single, None) == "prod"
        assert choose_connection(both, "other") == "other"

    def test_refusals_are_usage_errors_naming_no_flag(self) -> None:
        both = _profile({"prod": PROD, "other": OTHER})
        with pytest.raises(ConnectionChoiceError) as unknown:
            choose_connection(both, "nope")
        with pytest.raises(ConnectionChoiceError) as several:
            choose_connection(both, None)

        assert isinstance(unknown.value, UsageError)
        assert unknown.value.name == "nope"
        assert str(unknown.value) == (
            "'nope': profile 'ci' has no such connection (its connections: prod, other)"
        )
        assert several.value.summary == "profile 'ci' has 2 connections (prod, other)"
        assert "--" not in str(unknown.value) + str(several.value)


def _environ() -> dict[str, str]:
    """The job environment the ``emulator`` fixture set (SYSTEM_OIDCREQUESTURI, ...)."""
    return dict(os.environ)


def _profile(connections: dict[str, Connection]) -> ResolvedProfile:
    return ResolvedProfile("ci", None, connections, [], Settings())
