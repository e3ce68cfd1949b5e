"""Paging, sorting and filtering runs on the server, and downsampled metric series, on
both stores: the embedded SQLite folder and PostgreSQL (from ``.ci/services.sh``)."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from amlpkg.server.app import create_app
from amlpkg.server.settings import ServerSettings
from amlpkg.store.db import write_tx
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.store import queries
from amlpkg.trainer.store import runs as store_runs
from tests.server.conftest import Api
from tests.services import postgres_url, require
from tests.store.conftest import _create_database, _drop_database

V1 = "/api/v1"
OPTIMIZERS = ("adam", "sgd", "lion")


@pytest.fixture(params=["embedded", "postgres"])
def app(
    request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FastAPI]:
    """The server over a new workspace on each store (tokens and runs in that store)."""
    monkeypatch.delenv("AMLPKG_STORE", raising=False)
    name = admin = None
    if request.param == "postgres":
        admin = postgres_url()
        require(admin is not None, "PostgreSQL from .ci/services.sh (AMLPKG_TEST_DATABASE_URL)")
        assert admin is not None
        name, url = _create_database(admin)
        monkeypatch.setenv("AMLPKG_STORE", url)
    server = create_app(home, ServerSettings())
    try:
        yield server
    finally:
        server.state.amlpkg.close()
        if admin is not None and name is not None:
            _drop(admin, name)


def _drop(admin: str, name: str) -> None:
    """Drop the test database; an autovacuum worker busy in it (not ours to end) is waited for."""
    import psycopg

    for attempt in range(20):
        try:
            _drop_database(admin, name)
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == 19:
                raise
            time.sleep(0.5)


def _seed(ws: Workspace) -> list[str]:
    """Twelve runs, newest last: run-00..run-11 over two experiments, params, tags and
    metrics (acc over three steps; run-03 and run-07 log none); returns their ids."""
    ids = []
    for i in range(12):
        run = store_runs.create_run(ws, "even" if i % 2 == 0 else "odd", f"run-{i:02d}")
        store_runs.log_params(ws, run, {"opt": OPTIMIZERS[i % 3], "lr": f"0.{i:02d}"})
        store_runs.set_tags(ws, run, {"team": "vision" if i < 6 else "speech"})
        if i not in (3, 7):
            for step, frac in enumerate((0.2, 0.5, 1.0)):
                store_runs.log_metrics(ws, run, {"acc": (i / 11) * frac}, step)
        store_runs.log_metrics(ws, run, {"loss": 1.0 - i / 20}, 0)
        store_runs.finish_run(ws, run, "failed" if i == 5 else "completed")
        ids.append(run)
    with write_tx(ws.conn) as conn:  # fixed times: start one minute apart, run i lasts i s
        for i, run in enumerate(ids):
            start = 1_700_000_000.0 + 60 * i
            conn.execute(
                "UPDATE runs SET start_time = ?, end_time = ? WHERE id = ?",
                (start, start + (i * 7) % 12, run),
            )
    return ids


@pytest.fixture
def runs(app: FastAPI, home: Path) -> list[str]:
    with open_workspace(home) as ws:
        return _seed(ws)


def _names(api: Api, **params: object) -> list[str]:
    answer = api.get(f"{V1}/runs", params=params)
    assert answer.status_code == 200, answer.text
    return [r["name"] for r in answer.json()]


def test_pages_come_newest_first_with_a_count_and_links(
    api: dict[str, Api], runs: list[str]
) -> None:
    reader = api["reader"]
    first = reader.get(f"{V1}/runs", params={"limit": 5})
    assert first.headers["x-total-count"] == "12"
    assert 'offset=5>; rel="next"' in first.headers["link"]
    assert "prev" not in first.headers["link"]
    seen = [r["name"] for r in first.json()]
    for offset in (5, 10):
        page = reader.get(f"{V1}/runs", params={"limit": 5, "offset": offset})
        assert ('rel="next"' in page.headers["link"]) == (offset == 5)
        assert f'offset={offset - 5}>; rel="prev"' in page.headers["link"]
        seen += [r["name"] for r in page.json()]
    assert seen == [f"run-{i:02d}" for i in reversed(range(12))]
    assert _names(reader, limit=5, offset=12) == []
    past = reader.get(f"{V1}/runs", params={"limit": 5, "offset": 20})
    assert past.json() == [] and past.headers["x-total-count"] == "12"  # counted apart
    assert _names(reader) == seen  # no parameters: what clients before paging asked


def test_sorting_by_attributes_metrics_and_params(api: dict[str, Api], runs: list[str]) -> None:
    reader = api["reader"]
    assert _names(reader, sort="start_time", order="asc", limit=3) == ["run-00", "run-01", "run-02"]
    # Durations are (i * 7) % 12 s: run-00 0 s, run-07 1 s, run-02 2 s, ...
    assert _names(reader, sort="duration", order="asc", limit=3) == ["run-00", "run-07", "run-02"]
    # The final value of acc is i / 11; runs without it come last in both directions.
    by_acc = _names(reader, sort="metrics.acc")
    assert by_acc[:3] == ["run-11", "run-10", "run-09"] and by_acc[-2:] == ["run-07", "run-03"]
    ascending = _names(reader, sort="metrics.acc", order="asc")
    assert ascending[:2] == ["run-00", "run-01"] and ascending[-2:] == ["run-03", "run-07"]
    assert _names(reader, sort="params.lr", order="asc", limit=2) == ["run-00", "run-01"]
    assert _names(reader, sort="name", order="desc", limit=1) == ["run-11"]
    # Paging a metric order neither repeats nor skips a run.
    paged = [n for o in (0, 4, 8) for n in _names(reader, sort="metrics.acc", limit=4, offset=o)]
    assert paged == by_acc


def test_filters_by_experiment_status_tag_and_search(api: dict[str, Api], runs: list[str]) -> None:
    reader = api["reader"]
    assert _names(reader, experiment="odd", limit=2) == ["run-11", "run-09"]
    assert _names(reader, status="failed") == ["run-05"]
    assert len(_names(reader, tag="team=vision")) == 6
    assert _names(reader, tag=["team=vision", "opt=lion"]) == []  # opt is a param, not a tag
    assert _names(reader, q="metrics.acc > 0.8", order="asc") == ["run-09", "run-10", "run-11"]
    assert _names(reader, q="metrics.acc>=0.9 and params.opt = sgd") == ["run-10"]
    assert _names(reader, q="metrics.acc = 0") == ["run-00"]
    assert _names(reader, q="metrics.acc != 0", limit=20)[-1] == "run-01"
    assert len(_names(reader, q='tags.team != "vision"')) == 6
    assert _names(reader, q="RUN-1", order="asc") == ["run-10", "run-11"]  # any case
    assert _names(reader, q=runs[4][:10]) == ["run-04"]
    assert _names(reader, q="run_0") == []  # "_" is a character here, not a wildcard
    filtered = reader.get(f"{V1}/runs", params={"q": "metrics.loss < 0.58", "limit": 1})
    assert filtered.headers["x-total-count"] == "3"  # 1 - i/20 < 0.58 for i = 9, 10, 11
    assert [r["name"] for r in filtered.json()] == ["run-11"]


def test_a_metric_compares_by_its_final_value(api: dict[str, Api], home: Path) -> None:
    with open_workspace(home) as ws:
        run = store_runs.create_run(ws, "x", "late-drop")
        store_runs.log_metrics(ws, run, {"acc": 0.99}, 0)
        store_runs.log_metrics(ws, run, {"acc": 0.1}, 5)
        store_runs.log_metrics(ws, run, {"acc": 0.95}, 2)
    assert _names(api["reader"], q="metrics.acc > 0.5") == []
    assert _names(api["reader"], q="metrics.acc < 0.2") == ["late-drop"]


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"q": "metrics.acc > high"}, 400, "compares with a number"),
        ({"q": "params.lr > 0.1"}, 400, "with = or !="),
        ({"q": "metrics.acc"}, 400, "expected one of"),
        ({"q": 'tags."team = x'}, 400, "unclosed"),
        ({"q": "x " * 300}, 400, "query.q"),
        ({"q": " ".join(["w"] * 21)}, 400, "clauses"),
        ({"sort": "password"}, 400, "cannot sort"),
        ({"sort": "metrics."}, 400, "cannot sort"),
        ({"order": "sideways"}, 400, "query.order"),
        ({"limit": 0}, 400, "query.limit"),
        ({"limit": 5000}, 400, "query.limit"),
        ({"offset": -1}, 400, "query.offset"),
        ({"tag": "ab"}, 400, "query.tag"),
        ({"tag": "novalue"}, 400, "KEY=VALUE"),
        ({"tag": [f"k{i}=v" for i in range(11)]}, 400, "tag filters"),
        ({"status": "lost"}, 400, "query.status"),
    ],
)
def test_bad_input_is_a_clear_client_error(
    api: dict[str, Api], runs: list[str], params: dict[str, object], status: int, fragment: str
) -> None:
    answer = api["reader"].get(f"{V1}/runs", params=params)
    assert answer.status_code == status, answer.text
    assert fragment in answer.json()["error"], answer.json()
    if not fragment.startswith("query."):  # the store's own checks say how to fix it
        assert answer.json()["hint"]


@pytest.mark.parametrize(
    "hostile",
    [
        "'; DROP TABLE runs; --",
        'metrics."acc\'; DROP TABLE runs; --" > 1',
        "params.lr = \"' OR '1'='1\"",
        "%",
        "\\",
        "tags.`x` = `y`",
    ],
)
def test_search_text_is_bound_never_run(api: dict[str, Api], runs: list[str], hostile: str) -> None:
    answer = api["reader"].get(f"{V1}/runs", params={"q": hostile})
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 200:
        assert answer.json() == []
    assert len(_names(api["reader"], limit=50)) == 12


def test_sort_value_and_tag_with_odd_characters(api: dict[str, Api], home: Path) -> None:
    with open_workspace(home) as ws:
        run = store_runs.create_run(ws, "x", "odd keys")
        store_runs.log_metrics(ws, run, {"val/acc top-1": 0.7}, 0)
        store_runs.set_tags(ws, run, {"a=b": "c d"})
    reader = api["reader"]
    assert _names(reader, q='metrics."val/acc top-1" >= 0.7') == ["odd keys"]
    assert _names(reader, sort="metrics.val/acc top-1") == ["odd keys"]
    assert _names(reader, q='tags."a=b" = "c d"') == ["odd keys"]
    assert _names(reader, q='"odd keys"') == ["odd keys"]


def test_a_long_series_is_thinned_keeping_extremes_and_ends(
    api: dict[str, Api], home: Path
) -> None:
    with open_workspace(home) as ws:
        run = store_runs.create_run(ws, "x", "long")
        rows = [(run, "loss", math.sin(s / 300) + (9.0 if s == 4321 else 0.0), s, 1e9 + s)
                for s in range(20_000)]  # fmt: skip
        ws.conn.executemany(
            "INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
    url = f"{V1}/runs/{run}/metrics/loss"
    answer = api["reader"].get(url, params={"max_points": 200, "downsample": "minmax"}).json()
    points = answer["points"]
    assert answer["logged"] == 20_000
    assert 100 <= len(points) <= 200
    steps = [p["step"] for p in points]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert (points[0]["step"], points[-1]["step"]) == (0, 19_999)
    assert points[-1]["value"] == pytest.approx(math.sin(19_999 / 300))
    assert max(p["value"] for p in points) == pytest.approx(9.0 + math.sin(4321 / 300))
    assert min(p["value"] for p in points) == pytest.approx(min(r[2] for r in rows), abs=1e-9)
    # A value logged later is in the next answer (what was thinned before is not reused).
    with open_workspace(home) as ws:
        store_runs.log_metrics(ws, run, {"loss": -5.0}, 20_000)
    again = api["reader"].get(url, params={"max_points": 200, "downsample": "minmax"}).json()
    assert again["logged"] == 20_001 and again["points"][-1]["value"] == -5.0
    # A finished run's series is reused until its steps change (or REUSE_S passes).
    with open_workspace(home) as ws:
        store_runs.finish_run(ws, run, "completed")
        store_runs.log_metrics(ws, run, {"loss": 3.0}, 20_001)
    thin = {"max_points": 200, "downsample": "minmax"}
    later = api["reader"].get(url, params=thin).json()
    assert later["logged"] == 20_002 and later["points"][-1]["value"] == 3.0
    assert api["reader"].get(url, params=thin).json() == later
    short = api["reader"].get(
        url.replace("loss", "nothing"), params={"max_points": 10, "downsample": "minmax"}
    )
    assert short.json()["points"] == [] and short.json()["logged"] == 0
    tiny = api["reader"].get(url, params={"max_points": 3, "downsample": "minmax"})
    assert tiny.status_code == 400 and "at least 4" in tiny.json()["error"]


def test_the_library_lists_with_the_same_filters(home: Path, app: FastAPI) -> None:
    with open_workspace(home) as ws:
        _seed(ws)
        found = queries.list_runs(ws, search="metrics.acc > 0.8", sort="metrics.acc", limit=2)
        assert [r.name for r in found] == ["run-11", "run-10"]
        assert found[0].metrics == {"acc": 1.0, "loss": pytest.approx(0.45)}
        page = queries.list_runs(ws, tags={"team": "speech"}, order="asc", offset=1, limit=2)
        assert [r.name for r in page] == ["run-07", "run-08"]
        assert queries.best_run(ws, "acc", maximize=False).name == "run-00"
        assert queries.best_run(ws, "loss", experiment="odd").name == "run-01"


def test_listing_more_runs_than_one_statement_binds(home: Path, app: FastAPI) -> None:
    with open_workspace(home) as ws:
        exp = ws.conn.execute("SELECT id FROM experiments").fetchall()
        assert exp == []  # a fresh workspace: rows go in directly, as a bulk import would
        with write_tx(ws.conn) as conn:
            conn.execute("INSERT INTO experiments (name, created) VALUES ('bulk', 0)")
            exp_id = conn.execute("SELECT id FROM experiments").scalar()
            conn.executemany(
                "INSERT INTO runs (id, experiment_id, name, status, start_time)"
                " VALUES (?, ?, ?, 'completed', ?)",
                [(f"{i:032x}", exp_id, f"b{i}", float(i)) for i in range(1200)],
            )
            conn.executemany(
                "INSERT INTO params (run_id, key, value) VALUES (?, 'i', ?)",
                [(f"{i:032x}", str(i)) for i in range(1200)],
            )
        found = queries.list_runs(ws, limit=None)
        assert len(found) == 1200 and found[0].params == {"i": "1199"}
        assert found[-1].name == "b0"


PIECES = ["metrics.", "params.", "tags.", "acc", "lr", '"', "'", "`", "=", "!=", "<", ">=", "==",
          "0.5", "-1e3", "1e309", "nan", "and", " ", "%", "_", "\\", "\x00", "é", "run-0", "--",
          ";", "*", "(", ")"]  # fmt: skip


def test_random_searches_never_fail_the_server(api: dict[str, Api], runs: list[str]) -> None:
    rng = random.Random(11)
    reader = api["reader"]
    for _ in range(150):
        q = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 12)))
        params: dict[str, object] = {"q": q}
        if rng.random() < 0.3:
            params["sort"] = rng.choice(["metrics.acc", "params.lr", "name", "metrics.\x00", q])
        if rng.random() < 0.3:
            params["tag"] = f"team={q}"
        if rng.random() < 0.2:
            params["experiment"] = q
        answer = reader.get(f"{V1}/runs", params=params)
        assert answer.status_code in (200, 400), (params, answer.text)
    nul = reader.get(
        f"{V1}/runs/{runs[0]}/metrics/a%00b", params={"max_points": 10, "downsample": "minmax"}
    )
    assert nul.status_code in (200, 400), nul.text  # never a database error


def test_values_the_database_cannot_store_are_a_clear_400(api: dict[str, Api]) -> None:
    """A NUL character is valid JSON but PostgreSQL text cannot hold it: 400, never 500."""
    contributor = api["contributor"]
    made = contributor.post(f"{V1}/runs", json={"experiment": "nul", "name": "ok"})
    assert made.status_code == 201, made.text
    run = made.json()["id"]
    for path, body in (
        (f"{V1}/runs", {"experiment": "nul", "name": "a\x00b"}),
        (f"{V1}/runs/{run}/log-batch", {"params": {"k\x00": "v"}}),
        (f"{V1}/runs/{run}/log-batch", {"tags": {"k": "v\x00"}}),
    ):
        answer = contributor.post(path, json=body)
        if not os.environ.get("AMLPKG_STORE", "").startswith("postgresql"):
            assert answer.status_code in (200, 201), answer.text  # SQLite stores it
            continue
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "a value in the request cannot be stored"
        assert "NUL" in answer.json()["hint"]
    assert contributor.get(f"{V1}/runs/{run}").status_code == 200
