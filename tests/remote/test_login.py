"""`amlpkg login`/`logout` against a real server; which backend the settings select."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from amlpkg.errors import InvalidArgumentError, NotFoundError, UnauthenticatedError
from amlpkg.trainer.remote import config
from amlpkg.trainer.remote.backend import open_backend
from amlpkg.trainer.remote.client import PermissionDeniedError, TeamClient
from tests.remote.conftest import TeamServer, amlpkg

pytestmark = pytest.mark.slow


def test_login_keeps_0600_credentials_outside_the_project(team: TeamServer, tmp_path: Path) -> None:
    token = team.tokens["reader"]
    project = tmp_path / "project"
    project.mkdir()
    done = amlpkg("login", team.url + "/", "--token", token, cwd=project)
    assert token not in done.stdout + done.stderr  # masked: amlpkg_<id>_****
    assert "****" in done.stdout
    path = tmp_path / "config" / "amlpkg" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"current": team.url, "servers": {team.url: token}}
    assert list(project.iterdir()) == []
    # Now the server is the tracking backend of every command without --home.
    assert amlpkg("runs", "list", "--json", cwd=project).stdout.strip() == "[]"
    assert config.tracking_server() == config.Server(team.url, token)
    assert token not in repr(config.tracking_server())
    done = amlpkg("logout", cwd=project)
    assert "logged out" in done.stdout
    assert json.loads(path.read_text()) == {"current": None, "servers": {}}
    assert config.tracking_server() is None


def test_a_wrong_token_is_refused_with_a_clear_message(team: TeamServer, tmp_path: Path) -> None:
    wrong = team.tokens["reader"][:-4] + "abcd"
    done = amlpkg("login", team.url, "--token", wrong, check=False)
    assert done.returncode == 2
    assert f"{team.url} refused the token" in done.stderr
    assert wrong not in done.stdout + done.stderr
    assert "amlpkg server token create" in done.stderr
    assert not (tmp_path / "config" / "amlpkg" / "credentials.json").exists()
    # Asked for at the (hidden) prompt when --token is left out.
    done = amlpkg("login", team.url, check=False, stdin=wrong + "\n")
    assert done.returncode == 2 and "refused the token" in done.stderr
    assert wrong not in done.stdout + done.stderr
    refused = amlpkg("login", "http://127.0.0.1:9", "--token", wrong, check=False)
    assert refused.returncode == 2 and "cannot reach the team server" in refused.stderr


def test_precedence_flag_over_env_over_login(
    team: TeamServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config.save_login(config.Server(team.url, team.tokens["reader"]))
    assert config.tracking_server() == config.Server(team.url, team.tokens["reader"])
    # A named workspace in the environment wins over the login ...
    monkeypatch.setenv("AMLPKG_HOME", str(tmp_path / "ws2"))
    assert config.tracking_server() is None
    # ... the tracking URI in the environment over both, with its own token ...
    monkeypatch.setenv("AMLPKG_TRACKING_URI", team.url)
    monkeypatch.setenv("AMLPKG_TRACKING_TOKEN", team.tokens["contributor"])
    assert config.tracking_server() == config.Server(team.url, team.tokens["contributor"])
    # ... and a flag over the environment.
    assert config.tracking_server(home=tmp_path) is None
    with pytest.raises(InvalidArgumentError, match="choose one"):
        config.tracking_server(home=tmp_path, tracking_uri=team.url)
    monkeypatch.delenv("AMLPKG_TRACKING_TOKEN")
    with pytest.raises(UnauthenticatedError, match="no token for the tracking server"):
        config.tracking_server(tracking_uri="http://elsewhere:1")
    with pytest.raises(InvalidArgumentError, match="must not carry credentials"):
        config.normalize_url("https://user:secret@host")


def test_server_errors_come_back_as_the_error_tree(
    team: TeamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TeamClient(config.Server(team.url, team.tokens["reader"])) as reader:
        with pytest.raises(NotFoundError, match="no run 'abcd'"):
            reader.get_run("abcd")
        with pytest.raises(PermissionDeniedError, match="a reader token may not do this") as info:
            reader.create_run("e", None)
        assert info.value.hint and "owner" in info.value.hint
        with pytest.raises(InvalidArgumentError, match="is not a run id"):
            reader.get_run("zz")
    monkeypatch.setenv("AMLPKG_TRACKING_TOKEN", team.tokens["reader"])
    with open_backend(tracking_uri=team.url) as backend, pytest.raises(NotFoundError):
        backend.get_model_version("nothing:1")
