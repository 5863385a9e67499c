"""Robot authentication: one bearer token per robot, stored only as its SHA-256.

Hashes come from ``robots[].token_sha256`` in config.yaml and from ``auth.tokens_file``, a YAML
map ``{robot_id: sha256hex}``. Tokens are never logged; hashes are compared with
:func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from robostream.config import Settings, validate_id
from robostream.errors import RobostreamError

ROBOT_HEADER = "X-Robot-Id"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class AuthError(RobostreamError):
    """A request that may not stream: the message is safe to send back (never holds the token)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is connected. ``robot_id`` None: unauthenticated mode without an ``X-Robot-Id``."""

    robot_id: str | None
    authenticated: bool

    def may_write(self, robot_id: str) -> bool:
        """A robot writes only its own ``robot_id``."""
        return self.robot_id is None or self.robot_id == robot_id


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored in config for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_tokens_file(path: Path) -> dict[str, str]:
    """Read a tokens file (YAML ``{robot_id: sha256hex}``); raises ``ValueError`` naming the line."""
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read tokens file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"tokens file {path}: expected a map robot_id: sha256hex")
    hashes = {}
    for robot_id, digest in data.items():
        try:
            validate_id(str(robot_id), "robot_id")
        except ValueError as exc:
            raise ValueError(f"tokens file {path}: {exc}") from None
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise ValueError(
                f"tokens file {path}: robot {robot_id}: expected 64 lowercase hex digits "
                "(sha256 of the token)"
            )
        hashes[str(robot_id)] = digest
    return hashes


class TokenStore:
    """Robot id -> token hash, with constant-time checks."""

    def __init__(self, hashes: Mapping[str, str]) -> None:
        self._hashes = dict(hashes)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenStore:
        """Hashes of ``robots[].token_sha256`` merged with ``auth.tokens_file`` (the file wins)."""
        hashes = {r.id: r.token_sha256 for r in settings.robots if r.token_sha256}
        if settings.auth.tokens_file is not None:
            hashes.update(load_tokens_file(settings.auth.tokens_file))
        return cls(hashes)

    def __len__(self) -> int:
        return len(self._hashes)

    def knows(self, robot_id: str) -> bool:
        """True when ``robot_id`` has a token."""
        return robot_id in self._hashes

    def check(self, robot_id: str, token: str) -> bool:
        """True when ``token`` is ``robot_id``'s token."""
        stored = self._hashes.get(robot_id)
        return stored is not None and hmac.compare_digest(stored, hash_token(token))

    def robot_for(self, token: str) -> str | None:
        """The robot owning ``token`` (every hash is compared, so timing says nothing)."""
        digest = hash_token(token)
        found = None
        for robot_id, stored in self._hashes.items():
            if hmac.compare_digest(stored, digest):
                found = robot_id
        return found


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    value = headers.get("Authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed Authorization header: expected 'Bearer <token>'")
    return token.strip()


def _claimed_robot(headers: Mapping[str, str]) -> str | None:
    claimed = headers.get(ROBOT_HEADER)
    if claimed is None:
        return None
    try:
        return validate_id(claimed, "robot id")
    except ValueError as exc:
        raise AuthError(f"{ROBOT_HEADER}: {exc}") from None


def authenticate(headers: Mapping[str, str], store: TokenStore, *, allow_unauthenticated: bool) -> Identity:
    """Who sent these request headers. Raises :class:`AuthError` with a reason to send back.

    ``Authorization: Bearer <token>`` names the robot; an ``X-Robot-Id`` header, when present,
    must agree. Without a token only ``auth.allow_unauthenticated`` lets a robot in (its identity
    is then its ``X-Robot-Id``, or none: any robot_id).
    """
    token = bearer_token(headers)
    claimed = _claimed_robot(headers)
    if token is None:
        if allow_unauthenticated:
            return Identity(claimed, authenticated=False)
        raise AuthError("missing token: send 'Authorization: Bearer <token>'")
    if claimed is not None:
        if not store.check(claimed, token):
            raise AuthError(f"invalid token for robot {claimed}")
        return Identity(claimed, authenticated=True)
    robot_id = store.robot_for(token)
    if robot_id is None:
        raise AuthError("invalid token")
    return Identity(robot_id, authenticated=True)
