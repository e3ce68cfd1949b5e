"""The store-and-forward queue: order, unique ids, restarts, the byte cap and acks."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlpkg.edge_agent.outbox import Outbox
from amlpkg.errors import InvalidArgumentError


def test_messages_keep_order_and_get_unique_ids(tmp_path: Path) -> None:
    with Outbox(tmp_path / "q.db", "dev1") as box:
        sent = [box.append({"n": i}) for i in range(5)]
        queued = box.peek()
    assert [m.seq for m in queued] == sorted(m.seq for m in sent)
    assert [m.payload()["n"] for m in queued] == [0, 1, 2, 3, 4]
    assert len({m.message_id for m in queued}) == 5
    assert all(m.message_id == f"dev1:{m.seq}" for m in queued)
    assert queued[0].payload()["message_id"] == queued[0].message_id


def test_queue_survives_restart_and_sequence_never_reuses(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with Outbox(path, "dev1") as box:
        box.append({"n": 0})
        last = box.append({"n": 1})
        box.ack(last.seq)  # acked everything: the table is empty now
        kept = box.append({"n": 2})
    with Outbox(path, "dev1") as box:
        queued = box.peek()
        fresh = box.append({"n": 3})
    assert [m.payload()["n"] for m in queued] == [2]
    assert queued[0].message_id == kept.message_id
    assert fresh.seq > kept.seq > last.seq


def test_ack_removes_only_acknowledged_messages(tmp_path: Path) -> None:
    with Outbox(tmp_path / "q.db", "d") as box:
        msgs = [box.append({"n": i}) for i in range(4)]
        box.ack(msgs[1].seq)
        assert [m.payload()["n"] for m in box.peek()] == [2, 3]
        assert box.pending()[0] == 2


def test_byte_cap_drops_oldest_and_counts_drops(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with Outbox(path, "d", max_bytes=1000) as box:
        for i in range(50):
            box.append({"n": i, "pad": "x" * 50})
        count, size = box.pending()
        queued = box.peek(1000)
        dropped = box.dropped
    assert size <= 1000
    assert dropped == 50 - count > 0
    # the newest survive, still in order
    assert [m.payload()["n"] for m in queued] == list(range(50 - count, 50))
    with Outbox(path, "d", max_bytes=1000) as box:
        assert box.dropped == dropped  # the count survives restarts too


def test_message_larger_than_cap_is_refused_and_loses_nothing(tmp_path: Path) -> None:
    with Outbox(tmp_path / "q.db", "d", max_bytes=200) as box:
        box.append({"n": 1})
        with pytest.raises(InvalidArgumentError, match="exceeds the outbox cap"):
            box.append({"pad": "x" * 500})
        assert [m.payload()["n"] for m in box.peek()] == [1]
        assert box.dropped == 0


def test_merge_patch_follows_json_merge_patch() -> None:
    from amlpkg.edge_agent.agent import merge_patch

    doc = {"model": {"name": "m", "version": "1", "signature": "s"}, "telemetry_interval_s": 5}
    patched = merge_patch(doc, {"model": {"version": "2", "signature": None}, "$version": 3})
    assert patched == {
        "model": {"name": "m", "version": "2"},
        "telemetry_interval_s": 5,
        "$version": 3,
    }
    assert doc["model"]["version"] == "1"  # the original is untouched
