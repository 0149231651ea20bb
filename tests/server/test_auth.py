"""Authentication: bearer JWTs (HS256, RS256, EdDSA) and trusted identity headers."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from server.auth import Authenticator, AuthMode, JwtSettings, Unauthenticated

SECRET = "s3cret-for-tests-only-0123456789abcdef"


def token(
    claims: dict[str, Any] | None = None, *, key: Any = SECRET, algorithm: str = "HS256", **extra: Any
) -> str:
    body = {
        "sub": "ann",
        "tenant": "acme",
        "roles": ["operator"],
        "exp": int(time.time()) + 60,
        **(claims or {}),
    }
    body.update(extra)
    return jwt.encode(body, key, algorithm=algorithm)


def bearer(value: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {value}")]


@pytest.fixture
def hs256() -> Authenticator:
    return Authenticator(AuthMode.JWT, jwt_settings=JwtSettings(key=SECRET, algorithms=("HS256",)))


class TestJwt:
    def test_a_valid_token_gives_the_actor(self, hs256: Authenticator) -> None:
        actor = hs256.authenticate(bearer(token(name="Ann")))
        assert (actor.id, actor.tenant, actor.roles, actor.display_name) == (
            "ann",
            "acme",
            frozenset({"operator"}),
            "Ann",
        )

    def test_roles_may_be_a_comma_separated_string(self, hs256: Authenticator) -> None:
        assert hs256.authenticate(bearer(token(roles="member, viewer"))).roles == {"member", "viewer"}

    @pytest.mark.parametrize(
        ("make", "reason"),
        [
            (lambda: token(exp=int(time.time()) - 3600), "expired"),
            (lambda: token(key="another-secret-another-secret-0000"), "Signature verification failed"),
            (
                lambda: jwt.encode({"sub": "ann", "tenant": "acme", "exp": 2**31}, None, algorithm="none"),
                "not valid",
            ),
            (lambda: token(tenant=None), "tenant"),
            (lambda: token(roles=["admin", "system"]), "unknown roles: system"),
            (lambda: token(roles=[1]), "roles"),
            (lambda: token(sub="bad id with spaces"), "actor id"),
            (lambda: jwt.encode({"sub": "ann", "tenant": "acme"}, SECRET, algorithm="HS256"), "exp"),
        ],
        ids=[
            "expired",
            "bad-signature",
            "alg-none",
            "no-tenant",
            "system-role",
            "bad-roles",
            "bad-sub",
            "no-exp",
        ],
    )
    def test_bad_tokens_are_unauthenticated(self, hs256: Authenticator, make: Any, reason: str) -> None:
        with pytest.raises(Unauthenticated, match=reason):
            hs256.authenticate(bearer(make()))

    def test_identity_headers_are_refused_in_jwt_mode(self, hs256: Authenticator) -> None:
        with pytest.raises(Unauthenticated, match="identity headers"):
            hs256.authenticate([*bearer(token()), ("x-actor-id", "root"), ("x-actor-tenant", "acme")])

    @pytest.mark.parametrize("header", [None, "Basic abc", "Bearer ", "bearer"])
    def test_a_missing_or_malformed_authorization_header(
        self, hs256: Authenticator, header: str | None
    ) -> None:
        metadata = [] if header is None else [("authorization", header)]
        with pytest.raises(Unauthenticated, match="Bearer"):
            hs256.authenticate(metadata)

    def test_a_token_signed_with_another_algorithm_is_refused(self) -> None:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        rs256 = Authenticator(AuthMode.JWT, jwt_settings=JwtSettings(key=public, algorithms=("RS256",)))
        assert rs256.authenticate(bearer(token(key=private, algorithm="RS256"))).id == "ann"
        # The classic confusion attack: an HS256 token signed with the public key as secret.
        with pytest.raises(Unauthenticated):
            rs256.authenticate(bearer(jwt.encode({"sub": "x", "tenant": "t", "exp": 2**31}, "k" * 32)))

    def test_a_token_of_the_other_key_type_is_unauthenticated_not_unknown(self) -> None:
        """With both RS256 and EdDSA accepted and an RSA key, an EdDSA token makes PyJWT raise
        InvalidKeyError (not an InvalidTokenError): it is still the caller's bad token."""
        rsa_public = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        both = Authenticator(
            AuthMode.JWT, jwt_settings=JwtSettings(key=rsa_public, algorithms=("RS256", "EdDSA"))
        )
        ed_token = token(key=ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA")
        with pytest.raises(Unauthenticated, match="not signed with an accepted key"):
            both.authenticate(bearer(ed_token))

    def test_eddsa(self) -> None:
        private = ed25519.Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        eddsa = Authenticator(AuthMode.JWT, jwt_settings=JwtSettings(key=public, algorithms=("EdDSA",)))
        assert eddsa.authenticate(bearer(token(key=private, algorithm="EdDSA"))).tenant == "acme"

    def test_audience_and_issuer_when_configured(self) -> None:
        strict = Authenticator(
            AuthMode.JWT,
            jwt_settings=JwtSettings(key=SECRET, algorithms=("HS256",), audience="jobtask", issuer="idp"),
        )
        assert strict.authenticate(bearer(token(aud="jobtask", iss="idp"))).id == "ann"
        with pytest.raises(Unauthenticated):
            strict.authenticate(bearer(token(aud="other", iss="idp")))

    def test_misconfigurations(self) -> None:
        with pytest.raises(ValueError, match="secret or a public key"):
            Authenticator(AuthMode.JWT)
        with pytest.raises(ValueError, match="none"):
            Authenticator(AuthMode.JWT, jwt_settings=JwtSettings(key=SECRET, algorithms=("none",)))


class TestHeaders:
    def test_headers_give_the_actor(self) -> None:
        headers = Authenticator(AuthMode.HEADERS)
        actor = headers.authenticate(
            [("x-actor-id", "svc-a"), ("x-actor-tenant", "acme"), ("x-actor-roles", "operator,viewer")]
        )
        assert (actor.id, actor.tenant, actor.roles) == ("svc-a", "acme", frozenset({"operator", "viewer"}))

    def test_binary_values_and_missing_roles(self) -> None:
        actor = Authenticator(AuthMode.HEADERS).authenticate([("x-actor-id", b"a"), ("x-actor-tenant", "t")])
        assert actor.roles == frozenset()

    @pytest.mark.parametrize(
        "metadata",
        [[], [("x-actor-id", "a")], [("x-actor-id", "a"), ("x-actor-tenant", "t"), ("x-actor-roles", "god")]],
    )
    def test_incomplete_or_bad_headers(self, metadata: list[tuple[str, str]]) -> None:
        with pytest.raises(Unauthenticated):
            Authenticator(AuthMode.HEADERS).authenticate(metadata)


class TestAmbiguousOrReservedIdentities:
    @pytest.mark.parametrize("header", ["x-actor-id", "x-actor-tenant", "x-actor-roles"])
    def test_a_repeated_identity_header_is_refused(self, header: str) -> None:
        metadata = [("x-actor-id", "ann"), ("x-actor-tenant", "acme"), ("x-actor-roles", "member")]
        metadata.append((header.upper(), "admin" if header == "x-actor-roles" else "mallory"))
        with pytest.raises(Unauthenticated, match=f"{header} is sent more than once"):
            Authenticator(AuthMode.HEADERS).authenticate(metadata)

    def test_a_repeated_bearer_token_is_refused(self) -> None:
        hs256 = Authenticator(AuthMode.JWT, jwt_settings=JwtSettings(key=SECRET, algorithms=("HS256",)))
        with pytest.raises(Unauthenticated, match="authorization is sent more than once"):
            hs256.authenticate([*bearer(token()), *bearer(token({"sub": "root"}))])

    @pytest.mark.parametrize("actor_id", ["system:jobtask", "system:anything", "a\x07b", "a\nb"])
    def test_the_service_s_own_ids_and_control_characters_are_refused(self, actor_id: str) -> None:
        with pytest.raises(Unauthenticated, match="actor id is not acceptable"):
            Authenticator(AuthMode.HEADERS).authenticate([("x-actor-id", actor_id), ("x-actor-tenant", "t")])
