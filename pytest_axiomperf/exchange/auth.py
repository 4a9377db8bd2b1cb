"""Access tokens of the embedded exchange, as AxiomTrade issues them to its SDK.

The exchange's own token (the handle's ``token``) is a long-lived credential:
it is accepted as a bearer token, as the ``auth-access-token`` cookie and as the
``auth-refresh-token`` cookie, and is never revoked, so that one test rotating
tokens cannot lock out the clients of the next test in the session.

``POST /refresh-access-token`` with a valid ``auth-refresh-token`` cookie
issues a new access token: a JWT-shaped string whose payload carries ``iat``
and ``exp`` (epoch seconds), so the SDK computes its expiry as it does for the
real service. Issuing revokes the issued access token presented in the
request's ``auth-access-token`` cookie (a rotation: the old token then gets
401). An issued token expires ``access_token_ttl`` seconds after issue (a
profile knob). The registry is bounded: past `MAX_ISSUED` live tokens the
oldest is forgotten.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections import OrderedDict

__all__ = ["ACCESS_COOKIE", "MAX_ISSUED", "REFRESH_COOKIE", "AccessTokens"]

ACCESS_COOKIE = "auth-access-token"
"""Cookie carrying the access token (as the axiomtradeapi SDK sends it)."""

REFRESH_COOKIE = "auth-refresh-token"
"""Cookie carrying the refresh token."""

MAX_ISSUED = 10_000
"""Most issued access tokens kept alive at once."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class AccessTokens:
    """The exchange's credentials: its own token plus the access tokens it issued."""

    def __init__(self, master: str) -> None:
        """Accept `master` everywhere, forever; no access token issued yet."""
        self._master = master.encode()
        self._signing_key = secrets.token_bytes(32)
        # token -> expiry (epoch seconds), oldest first.
        self._issued: OrderedDict[str, float] = OrderedDict()

    def _is_master(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self._master)

    def check_access(self, presented: str, now: float) -> str | None:
        """None when `presented` is a valid access token at epoch `now`, else why not."""
        if self._is_master(presented):
            return None
        expires = self._issued.get(presented)
        if expires is None:
            return "unknown access token"
        if now >= expires:
            del self._issued[presented]
            return "access token expired"
        return None

    def valid_refresh(self, presented: str) -> bool:
        """Whether `presented` is a refresh token this exchange accepts."""
        return self._is_master(presented)

    def issue(self, now: float, ttl: float, previous: str | None = None) -> tuple[str, float]:
        """Issue an access token valid for `ttl` seconds from epoch `now`; revoke `previous`.

        Returns the token and its expiry (epoch seconds). The master token is
        never revoked, whatever `previous` is.
        """
        if previous is not None and not self._is_master(previous):
            self._issued.pop(previous, None)
        expires = now + ttl
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {
            "authenticatedUserId": "axiomperf-user",
            "iat": int(now),
            "exp": expires,
            "jti": secrets.token_urlsafe(12),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._signing_key, f"{header}.{payload}".encode(), hashlib.sha256)
        token = f"{header}.{payload}.{_b64(signature.digest())}"
        self._issued[token] = expires
        while len(self._issued) > MAX_ISSUED:
            self._issued.popitem(last=False)
        return token, expires

    def clear(self) -> None:
        """Revoke every issued access token (the master token stays valid)."""
        self._issued.clear()
