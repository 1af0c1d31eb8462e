"""The secret registry at scale: thousands of values sharing a prefix, eviction, longest first.

JWTs of one issuer share their first characters (``eyJ0eXAi...``), so a long watch registers
thousands of values under one prefix; every one must stay masked whole, the longest match first,
and the oldest must be forgotten once the registry is full.
"""

from __future__ import annotations

import base64
import json

import pytest

from agent import _secrets
from agent._secrets import MASK, forget_secrets, redact_text, register_secret

CAP = 4096  # _secrets._MAX_SECRETS


@pytest.fixture(autouse=True)
def _empty_registry():
    forget_secrets()
    yield
    forget_secrets()


def opaque(number: int, length: int) -> str:
    """A registered value of exactly ``length`` characters, all sharing one 8-character prefix."""
    body = f"sharedpx-{number:06d}-"
    return (body + "q" * length)[:length]


def jwt_like(number: int) -> str:
    """A JWT as Entra issues them: same header, payloads of varying lengths."""

    def part(payload: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")

    header = part({"typ": "JWT", "alg": "RS256", "kid": "k1"})
    claims = part({"aud": "https://management.azure.com", "n": number, "pad": "x" * (number % 7)})
    return f"{header}.{claims}.sig{number:05d}"


class TestManySecretsSharingAPrefix:
    def test_thousands_of_jwts_with_one_prefix_are_each_masked(self):
        """2,200 JWT-shaped values in one bucket: each is masked, alone and in running text."""
        values = [jwt_like(number) for number in range(2200)]
        for value in values:
            register_secret(value)

        assert len({value[:8] for value in values}) == 1
        for value in values[::97]:
            # The registry itself (redact_text would also mask them as JWT-shaped text).
            assert _secrets._mask_registered(f"a{value}b") == f"a{MASK}b"  # noqa: SLF001

    def test_values_of_many_lengths_sharing_a_prefix(self):
        """Every length is found: values of 40 different lengths under one prefix."""
        values = [opaque(number, 20 + number % 40) for number in range(400)]
        for value in values:
            register_secret(value)

        text = " | ".join(values)
        assert redact_text(text) == " | ".join([MASK] * len(values))

    def test_the_longest_value_at_a_position_wins(self):
        """A secret that starts like a shorter one is masked whole, whichever came first."""
        short, long = "sharedpx-overlap", "sharedpx-overlap-and-then-more"
        register_secret(long)
        register_secret(short)
        for number in range(300):  # crowd the bucket with other lengths
            register_secret(opaque(number, 18 + number % 30))

        assert redact_text(f"[{long}] [{short}] [{short}-x]") == f"[{MASK}] [{MASK}] [{MASK}-x]"

    def test_a_prefix_alone_is_not_masked(self):
        register_secret("sharedpx-the-whole-value")

        assert redact_text("sharedpx-the-whole") == "sharedpx-the-whole"


class TestEviction:
    def test_the_oldest_is_forgotten_at_the_cap_and_the_rest_stay_masked(self):
        """Registering past the cap forgets the oldest values only."""
        values = [opaque(number, 30 + number % 5) for number in range(CAP + 100)]
        for value in values:
            register_secret(value)

        for value in values[:100]:
            assert redact_text(value) == value
        for value in values[100::250]:
            assert redact_text(value) == MASK
        assert redact_text(values[-1]) == MASK

    def test_registering_again_keeps_a_value(self):
        """A value registered again is the newest: the cap evicts others first."""
        first = opaque(0, 40)
        register_secret(first)
        for number in range(1, CAP):
            register_secret(opaque(number, 40))
        register_secret(first)  # seen again
        for number in range(CAP, CAP + 10):
            register_secret(opaque(number, 40))

        assert redact_text(first) == MASK
        assert redact_text(opaque(1, 40)) == opaque(1, 40)

    def test_evicting_the_last_value_of_a_length_keeps_the_others(self):
        """A length leaves the bucket with its last value; values of other lengths still match."""
        lone = opaque(0, 57)  # the only value of its length
        register_secret(lone)
        others = [opaque(number, 33) for number in range(1, CAP + 1)]
        for value in others:
            register_secret(value)

        assert redact_text(lone) == lone
        assert redact_text(f"{others[-1]}{'q' * 24}") == f"{MASK}{'q' * 24}"
        register_secret(lone)
        assert redact_text(lone) == MASK

    def test_a_long_watch_keeps_masking_at_the_cap(self):
        """Tokens keep arriving for a long watch: the newest are always masked."""
        for number in range(3 * CAP):
            value = jwt_like(number)
            register_secret(value)
            if number % 1000 == 0:
                assert _secrets._mask_registered(value) == MASK  # noqa: SLF001
        assert _secrets._mask_registered(jwt_like(0)) == jwt_like(0)  # noqa: SLF001
