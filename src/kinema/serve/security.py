"""Who may call the service, how often, and which download URLs are genuine.

- `ApiKeys`: Bearer keys (`Authorization: Bearer <key>` as MiniMax documents it, with any header-name
  case since MiniMax's samples send `authorization:`, or `x-api-key`, which MiniMax's official CLI
  also tries), compared in constant time. A task belongs to the key that created it; keys are
  stored only as a short hash (the task's owner).
- `RateLimiter`: a token bucket per key, `per_minute` requests with bursts up to the same number.
- `UrlSigner`: HMAC-SHA256 over (file id, expiry) with a secret kept in the data folder, so download
  URLs need no auth header (as MiniMax's pre-signed object-storage URLs), cannot be forged or
  extended, and stay valid across a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ANONYMOUS = "anonymous"


def owner_of(key: str) -> str:
    """The owner recorded with a task: a hash of the key, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:24]


class AuthError(Exception):
    """No key, or a key the service does not know."""


class ApiKeys:
    """The accepted API keys; with none, every caller is the same anonymous owner."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = tuple(k.encode() for k in keys)

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def owner(self, headers: Mapping[str, str]) -> str:
        """The caller's owner id from its headers (looked up case-insensitively by the caller's mapping).

        Raises:
            AuthError: keys are required and the request has none, or an unknown one.
        """
        if not self._keys:
            return ANONYMOUS
        key = bearer_key(headers.get("authorization", "")) or headers.get("x-api-key", "").strip()
        if not key:
            raise AuthError("missing API key: send Authorization: Bearer <key>")
        given = key.encode()
        # Compare with every key, all the way, so timing does not reveal which prefix matched.
        known = False
        for k in self._keys:
            known |= hmac.compare_digest(given, k)
        if not known:
            raise AuthError("invalid api key")
        return owner_of(key)


def bearer_key(value: str) -> str:
    """The key of an `Authorization: Bearer <key>` value (scheme in any case), or ""."""
    scheme, _, key = value.strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


class RateLimiter:
    """Token buckets per key: `per_minute` tokens, refilled continuously.

    Args:
        per_minute: sustained requests per minute, and the largest burst.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError(f"requests per minute must be at least 1, got {per_minute}")
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)

    def allow(self, key: str) -> bool:
        """Take one token for `key`; False when its bucket is empty."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * self.per_minute / 60.0)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True


@dataclass(frozen=True)
class Signature:
    expires: int
    signature: str


class UrlSigner:
    """Signs and checks (file id, expiry) pairs.

    Args:
        secret: the HMAC key (32 random bytes, see `load_secret`).
        clock: wall-clock seconds (injectable for tests).
    """

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the URL signing secret must be at least 16 bytes")
        self._secret = secret
        self._clock = clock

    def _mac(self, file_id: int, expires: int) -> str:
        return hmac.new(self._secret, f"{file_id}:{expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, file_id: int, ttl_s: float) -> Signature:
        expires = int(self._clock() + ttl_s)
        return Signature(expires, self._mac(file_id, expires))

    def check(self, file_id: int, expires: str, signature: str) -> str | None:
        """None if the signature is genuine and unexpired, else why not (for the 403 body)."""
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            return "the download URL has no valid expiry"
        if not hmac.compare_digest(self._mac(file_id, int(expires)).encode(), signature.encode()):
            return "the download URL's signature does not match"
        if int(expires) < self._clock():
            return "the download URL has expired; call /v1/files/retrieve for a fresh one"
        return None


def load_secret(path: Path) -> bytes:
    """The signing secret at `path`, created (32 random bytes, mode 0600) on first use."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
    os.replace(tmp, path)
    return path.read_bytes()
