"""Robot tokens: hashed in config or a tokens file, one robot per token, reasons safe to send back."""

from __future__ import annotations

from pathlib import Path

import pytest

from robostream.config import AuthSettings, RobotSettings, Settings
from robostream.gateway.auth import (
    AuthError,
    Identity,
    TokenStore,
    authenticate,
    hash_token,
    load_tokens_file,
)

TOKENS = {"robot_001": "secret-one", "robot_002": "secret-two"}


def store() -> TokenStore:
    return TokenStore({robot: hash_token(token) for robot, token in TOKENS.items()})


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def test_hash_token_is_the_sha256_hex_that_goes_in_config() -> None:
    assert hash_token("x") == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"


def test_a_token_names_its_robot() -> None:
    assert authenticate(bearer("secret-two"), store(), allow_unauthenticated=False) == Identity(
        "robot_002", True
    )


def test_x_robot_id_must_agree_with_the_token() -> None:
    assert (
        authenticate(
            bearer("secret-one", **{"X-Robot-Id": "robot_001"}), store(), allow_unauthenticated=False
        ).robot_id
        == "robot_001"
    )
    with pytest.raises(AuthError, match="invalid token for robot robot_002"):
        authenticate(
            bearer("secret-one", **{"X-Robot-Id": "robot_002"}), store(), allow_unauthenticated=False
        )


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing token"),
        (bearer("wrong"), "invalid token"),
        ({"Authorization": "Basic abc"}, "malformed Authorization header"),
        ({"Authorization": "Bearer "}, "malformed Authorization header"),
        (bearer("secret-one", **{"X-Robot-Id": "../etc"}), "X-Robot-Id: invalid robot id"),
    ],
)
def test_refusals_say_why_without_echoing_the_token(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(AuthError, match=reason) as refused:
        authenticate(headers, store(), allow_unauthenticated=False)
    assert "secret" not in str(refused.value) and "wrong" not in str(refused.value)


def test_unauthenticated_mode_takes_the_robot_from_x_robot_id_or_lets_any_robot_in() -> None:
    assert authenticate({"X-Robot-Id": "robot_009"}, store(), allow_unauthenticated=True) == Identity(
        "robot_009", False
    )
    anyone = authenticate({}, store(), allow_unauthenticated=True)
    assert anyone == Identity(None, False) and anyone.may_write("robot_123")
    with pytest.raises(AuthError, match="invalid token"):  # a token, if sent, is still checked
        authenticate(bearer("wrong"), store(), allow_unauthenticated=True)


def test_a_robot_may_write_only_its_own_id() -> None:
    robot = Identity("robot_001", True)
    assert robot.may_write("robot_001") and not robot.may_write("robot_002")


def test_tokens_come_from_config_and_the_tokens_file_which_wins(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.yaml"
    tokens_file.write_text(f"robot_002: {hash_token('rotated')}\nrobot_003: {hash_token('three')}\n")
    settings = Settings(
        robots=[
            RobotSettings(id="robot_001", token_sha256=hash_token("one")),
            RobotSettings(id="robot_002", token_sha256=hash_token("two")),
            RobotSettings(id="robot_004"),
        ],
        auth=AuthSettings(tokens_file=tokens_file),
    )
    tokens = TokenStore.from_settings(settings)
    assert len(tokens) == 3
    assert tokens.check("robot_001", "one") and tokens.check("robot_002", "rotated")
    assert not tokens.check("robot_002", "two") and tokens.check("robot_003", "three")
    assert not tokens.knows("robot_004")  # no token: cannot connect unless unauthenticated mode
    assert tokens.robot_for("three") == "robot_003" and tokens.robot_for("nope") is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("- a\n- b\n", "expected a map"),
        ("robot_001: not-a-hash\n", "robot robot_001: expected 64 lowercase hex digits"),
        ("'bad/id': " + "a" * 64 + "\n", "invalid robot_id"),
        ("robot_001: [unclosed\n", "cannot read tokens file"),
    ],
)
def test_a_bad_tokens_file_is_refused_with_the_reason(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem):
        load_tokens_file(path)
