"""Signed version floors kept in a state folder: merged between writers, never lowered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amlpkg.errors import FailedPreconditionError
from amlpkg.runtime.floors import FILE, Floors


def test_floors_survive_a_new_instance_and_merge_between_writers(tmp_path: Path) -> None:
    one, two = Floors(tmp_path), Floors(tmp_path)  # two worker processes of one server
    one.raise_to("a", 3)
    two.raise_to("b", 5)
    two.raise_to("a", 2)  # lower than what another writer recorded: no effect on disk
    assert json.loads((tmp_path / FILE).read_text()) == {"a": 3, "b": 5}
    fresh = Floors(tmp_path)
    assert (fresh.get("a"), fresh.get("b"), fresh.get("c")) == (3, 5, None)


def test_a_damaged_file_starts_from_what_serves_and_memory_only_needs_no_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / FILE).write_text("{not json")
    floors = Floors(tmp_path)
    assert floors.get("a") is None
    floors.raise_to("a", 1)
    assert json.loads((tmp_path / FILE).read_text()) == {"a": 1}
    in_memory = Floors()
    in_memory.raise_to("a", 4)
    assert in_memory.get("a") == 4


def test_an_unusable_state_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(FailedPreconditionError, match="cannot use the state folder"):
        Floors(blocker / "state")
