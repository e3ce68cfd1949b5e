"""Each run's final metric values, kept on write in ``latest_metrics``, on both backends.

The search, sort and run pages read them there; these tests pin the rule (highest step,
the latest logged on ties) against the history itself, and the upgrade's backfill.
"""

from __future__ import annotations

from amlpkg.store.workspace import Workspace
from amlpkg.trainer.migrations.trainer_0002_latest_metrics import BACKFILL
from amlpkg.trainer.store import queries
from amlpkg.trainer.store import runs as store_runs


def _latest(ws: Workspace) -> dict[tuple[str, str], tuple[float, int]]:
    rows = ws.conn.execute("SELECT run_id, key, value, step FROM latest_metrics").fetchall()
    return {(r[0], r[1]): (float(r[2]), int(r[3])) for r in rows}


def test_the_final_value_is_the_highest_steps_latest(ws: Workspace) -> None:
    run = store_runs.create_run(ws, "exp", "a")
    store_runs.log_metrics(ws, run, {"acc": 0.5, "loss": 2.0}, 5)
    store_runs.log_metrics(ws, run, {"acc": 0.4}, 3)  # an earlier step logged later: no change
    store_runs.log_metric_points(ws, run, [("loss", 1.5, 5), ("loss", 1.2, 5)])  # ties: last
    store_runs.log_metrics(ws, run, {"f1": 0.1}, None)
    store_runs.log_metric_points(ws, run, [("f1", 0.3, None), ("f1", 0.2, 0)])
    assert _latest(ws) == {
        (run, "acc"): (0.5, 5),
        (run, "loss"): (1.2, 5),
        (run, "f1"): (0.3, 1),
    }
    assert queries.get_run(ws, run).metrics == {"acc": 0.5, "f1": 0.3, "loss": 1.2}


def test_search_and_sort_read_the_final_values(ws: Workspace) -> None:
    runs = []
    for i, finals in enumerate([0.2, 0.9, 0.6]):
        run = store_runs.create_run(ws, "exp", f"r{i}")
        store_runs.log_metrics(ws, run, {"acc": 1.0}, 0)  # a high early value must not count
        store_runs.log_metrics(ws, run, {"acc": finals}, 1)
        runs.append(run)
    store_runs.create_run(ws, "exp", "no-metric")
    ordered = queries.list_runs(ws, experiment="exp", sort="metrics.acc", order="desc")
    assert [r.name for r in ordered] == ["r1", "r2", "r0", "no-metric"]
    found = queries.list_runs(ws, experiment="exp", search="metrics.acc > 0.5")
    assert {r.name for r in found} == {"r1", "r2"}
    assert queries.best_run(ws, "acc", maximize=False).id == runs[0]


def test_the_upgrade_backfill_matches_what_logging_kept(ws: Workspace) -> None:
    for i in range(3):
        run = store_runs.create_run(ws, "exp", f"r{i}")
        store_runs.log_metric_points(
            ws, run, [("acc", 0.1 * i, 0), ("acc", 0.5, 2), ("acc", 0.7 + i / 10, 2), ("x", i, 1)]
        )
        store_runs.log_metrics(ws, run, {"acc": 9.0}, 1)
    kept = _latest(ws)
    assert len(kept) == 6 and all(kept[(r, "acc")][1] == 2 for r, _ in kept)
    ws.conn.execute(BACKFILL)  # again over rows kept on write: they stay as they are
    assert _latest(ws) == kept
    ws.conn.execute("DELETE FROM latest_metrics")
    ws.conn.execute(BACKFILL)
    assert _latest(ws) == kept
