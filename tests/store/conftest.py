"""One store contract, two backends: the embedded folder (SQLite + local artifacts) and
a team's PostgreSQL + S3 bucket (the services ``.ci/services.sh`` starts).

Each test gets an empty workspace: a new folder, or a new PostgreSQL database and a
new prefix in the test bucket. PostgreSQL + S3 is skipped without those services,
except in CI (``tests.services.require``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from amlpkg.store.workspace import Workspace, open_workspace
from tests.services import postgres_url, require, s3_settings

BUCKET = "amlpkg-tests"


@dataclass(frozen=True)
class TeamStore:
    """A PostgreSQL database and an S3 prefix made for one test."""

    store: str
    artifacts: str


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's workspace."""
    monkeypatch.setenv("AMLPKG_HOME", str(tmp_path / "default-home"))
    for name in ("AMLPKG_STORE", "AMLPKG_ARTIFACTS"):
        monkeypatch.delenv(name, raising=False)


def _create_database(admin_url: str) -> tuple[str, str]:
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"amlpkg_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = make_url(admin_url).set(database=name)
    return name, url.render_as_string(hide_password=False)


def _drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def team_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[TeamStore]:
    """A fresh PostgreSQL database and S3 prefix; S3 settings exported for child processes."""
    admin = postgres_url()
    require(admin is not None, "PostgreSQL from .ci/services.sh (AMLPKG_TEST_DATABASE_URL)")
    s3 = s3_settings()
    require(s3 is not None, "S3 (SeaweedFS) from .ci/services.sh (AMLPKG_TEST_S3_ENDPOINT)")
    assert admin is not None and s3 is not None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3["access_key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3["secret_key"])
    monkeypatch.setenv("AMLPKG_S3_ENDPOINT_URL", s3["endpoint"])
    _ensure_bucket(s3)
    name, url = _create_database(admin)
    try:
        yield TeamStore(url, f"s3://{BUCKET}/{name}")
    finally:
        _drop_database(admin, name)


def _ensure_bucket(s3: dict[str, str]) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3["endpoint"],
        aws_access_key_id=s3["access_key"],
        aws_secret_access_key=s3["secret_key"],
        region_name="us-east-1",
    )
    try:
        client.head_bucket(Bucket=BUCKET)
    except client.exceptions.ClientError:
        client.create_bucket(Bucket=BUCKET)


@pytest.fixture(params=["embedded", "postgres+s3"])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """An empty workspace on each backend."""
    if request.param == "embedded":
        with open_workspace(tmp_path / "ws") as workspace:
            yield workspace
        return
    team: TeamStore = request.getfixturevalue("team_store")
    with open_workspace(tmp_path / "ws", store=team.store, artifacts=team.artifacts) as workspace:
        yield workspace
