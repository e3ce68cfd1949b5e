"""Commands that cannot work against a team server yet refuse when one is configured
(``AMLPKG_TRACKING_URI``, ``--tracking-uri`` or ``amlpkg login``) instead of using ``./.amlpkg``;
``--home`` or ``AMLPKG_HOME`` names a local workspace explicitly and lets them through."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlpkg.errors import FailedPreconditionError
from amlpkg.trainer.remote.config import Server, save_login
from amlpkg.trainer.remote.guard import configured_url, require_embedded
from tests.remote.conftest import _isolated_user, amlpkg

__all__ = ["_isolated_user"]  # own config folder, no AMLPKG_* from outside
URL = "http://127.0.0.1:9"  # nothing listens there: a refusal must not need the server

COMMANDS = {
    "amlpkg serve --model": ["serve", "--model", "iris:1"],
    "amlpkg rollout create": ["rollout", "create", "iris:2", "--fleet", "id=cam-*"],
    "amlpkg rollout status": ["rollout", "status", "r1"],
    "amlpkg rollout list": ["rollout", "list"],
    "amlpkg rollout abort": ["rollout", "abort", "r1"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_refuses_when_a_server_is_configured(command: str, tmp_path: Path) -> None:
    done = amlpkg(*COMMANDS[command], env={"AMLPKG_TRACKING_URI": URL}, cwd=tmp_path, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"`{command}` does not work against a team server yet" in done.stderr
    assert URL in done.stderr and "--home" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no ./.amlpkg made behind the user's back


def test_home_names_the_local_workspace_explicitly(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    done = amlpkg("deployments", "status", "shop", "--home", str(home),
                  env={"AMLPKG_TRACKING_URI": URL}, check=False)  # fmt: skip
    assert done.returncode == 2
    assert "no deployment 'shop'" in done.stderr  # it looked in the workspace, not refused
    assert "team server" not in done.stderr


def test_the_rules_follow_the_tracking_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert configured_url() is None
    require_embedded("amlpkg build")  # nothing configured: the embedded workspace
    save_login(Server("https://ml.example", "amlpkg_abc_secret"))
    assert configured_url() == "https://ml.example"
    with pytest.raises(FailedPreconditionError, match=r"`amlpkg build`.*https://ml\.example"):
        require_embedded("amlpkg build")
    require_embedded("amlpkg build", home=tmp_path)  # --home wins over the login
    monkeypatch.setenv("AMLPKG_HOME", str(tmp_path))
    assert configured_url() is None  # a named workspace is never sent to the login's server
    monkeypatch.setenv("AMLPKG_TRACKING_URI", "https://team.example/")
    assert configured_url() == "https://team.example"  # the environment's URI beats both
    with pytest.raises(FailedPreconditionError) as refused:
        require_embedded("amlpkg deploy")
    assert "amlpkg_abc_secret" not in str(refused.value) + str(refused.value.hint)
