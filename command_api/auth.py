"""Who is calling: a Supabase user (JWT: HS256 with the project secret, or asymmetric keys from a
JWKS URL) or a service / operator (an API key, stored hashed).

PyJWT is imported when a JWT is first checked or a JWKS URL is set: an API that only takes API keys
(the local stack, services) never loads it, nor the `cryptography` it brings (9 MiB at import; a
device's or an account's secret still loads `cryptography` when one is first used)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from command_api.errors import ApiError
from command_api.settings import ApiSettings
from common.settings import SettingsError

if TYPE_CHECKING:
    import jwt

log = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = ["RS256", "ES256", "EdDSA"]


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "service"]
    subject: str
    """The user's id (a UUID, `sub`) or the API key's name."""
    expires_at: float | None = None
    """When the user's token expires (Unix seconds, its `exp`); None for an API key."""

    @property
    def requested_by(self) -> str:
        """How the audit trail names the caller."""
        return f"user:{self.subject}" if self.kind == "user" else f"api-key:{self.subject}"

    @property
    def user_id(self) -> uuid.UUID | None:
        return uuid.UUID(self.subject) if self.kind == "user" else None


class AuthConfigError(SettingsError):
    """The production profile without any way to authenticate."""


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Authenticator:
    def __init__(self, settings: ApiSettings) -> None:
        self.audience = settings.jwt_audience
        self.jwt_secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self.jwks: jwt.PyJWKClient | None = None
        if settings.jwks_url:
            import jwt

            self.jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=600)
        self.keys: dict[str, str] = {}  # sha256 hex -> name
        for entry in (settings.api_key_hashes or "").split(","):
            name, _, digest = entry.strip().partition(":")
            if name:
                self.keys[digest] = name
        if settings.api_key is not None:
            self.keys[_digest(settings.api_key.get_secret_value())] = "default"
        self.development_key: str | None = None
        if not (self.keys or self.jwt_secret or self.jwks):
            if settings.profile == "production":
                raise AuthConfigError(
                    "API_PROFILE=production needs authentication: set SUPABASE_JWT_SECRET and/or SUPABASE_JWKS_URL "
                    "(frontend users) and/or COMMAND_API_KEYS (services, `name:sha256hex`)"
                )
            self.development_key = secrets.token_urlsafe(24)
            self.keys[_digest(self.development_key)] = "development"
            log.warning("no authentication configured; development API key for this run: %s", self.development_key)

    async def authenticate(self, request: web.Request) -> Principal:
        """The caller, from `Authorization: Bearer`, `X-API-Key` or (WebSockets) `?access_token=`."""
        token = request.headers.get("X-API-Key")
        if token is None:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
        if token is None:
            token = request.query.get("access_token") or _protocol_token(request)
        if token is None:
            raise ApiError(
                401,
                "unauthorized",
                "authentication required: send a Supabase access token as `Authorization: Bearer <jwt>` "
                "or an API key as `X-API-Key`",
            )
        if token.count(".") == 2:
            return await self._user(token)
        return self._service(token)

    def _service(self, key: str) -> Principal:
        digest = _digest(key)
        for known, name in self.keys.items():
            if hmac.compare_digest(known, digest):
                return Principal("service", name)
        raise ApiError(401, "invalid_api_key", "the API key is not valid")

    async def _user(self, token: str) -> Principal:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise ApiError(401, "invalid_token", f"the token is not a valid JWT: {exc}") from None
        algorithm = header.get("alg")
        key: Any
        if algorithm == "HS256":
            if self.jwt_secret is None:
                raise ApiError(401, "invalid_token", "HS256 tokens are not accepted: SUPABASE_JWT_SECRET is not set")
            key, algorithms = self.jwt_secret, ["HS256"]
        elif algorithm in ASYMMETRIC_ALGORITHMS and self.jwks is not None:
            try:
                key = (await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)).key
            except jwt.PyJWKClientConnectionError as exc:
                raise ApiError(503, "jwks_unavailable", f"the signing keys could not be fetched: {exc}") from None
            except jwt.PyJWTError as exc:
                raise ApiError(401, "invalid_token", f"no signing key for this token: {exc}") from None
            algorithms = [algorithm]
        else:
            raise ApiError(401, "invalid_token", f"tokens signed with {algorithm!r} are not accepted")
        try:
            claims = jwt.decode(
                token, key, algorithms=algorithms, audience=self.audience, options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "token_expired", "the token has expired: refresh the session") from None
        except jwt.PyJWTError as exc:
            raise ApiError(401, "invalid_token", f"the token was refused: {exc}") from None
        try:
            subject = str(uuid.UUID(str(claims["sub"])))
        except ValueError:
            raise ApiError(401, "invalid_token", "the token's `sub` is not a user id (UUID)") from None
        return Principal("user", subject, float(claims["exp"]))


WEBSOCKET_PROTOCOL = "vehicle-backend.v1"
"""What a browser offers beside `access_token.<token>` (and the API selects) on a WebSocket."""
TOKEN_PROTOCOL_PREFIX = "access_token."  # noqa: S105 - a protocol name, not a secret


def _protocol_token(request: web.Request) -> str | None:
    """A browser cannot set headers on a WebSocket; rather than the token in the URL (kept in logs
    and history), it can offer it as a subprotocol: `new WebSocket(url, ["vehicle-backend.v1",
    "access_token." + token])`. The API answers with `vehicle-backend.v1`, never echoing the token."""
    for protocol in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        offered = protocol.strip()
        if offered.startswith(TOKEN_PROTOCOL_PREFIX) and len(offered) > len(TOKEN_PROTOCOL_PREFIX):
            return offered.removeprefix(TOKEN_PROTOCOL_PREFIX)
    return None
