"""``amlpkg optimize`` refusals: bad refs, targets and sample files store nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.packager.optimize import Limits, optimize
from amlpkg.store.workspace import Workspace
from tests.packager.test_optimize import FAST, stored_state, ws

__all__ = ["ws"]  # the fixture, shared with test_optimize


def test_bad_ref_stores_nothing(ws: Workspace) -> None:
    before = stored_state(ws)
    with pytest.raises(NotFoundError, match="no version 9"):
        optimize("mlp:9", workspace=ws, **FAST)
    with pytest.raises(NotFoundError, match="no model named"):
        optimize("nothing", workspace=ws, **FAST)
    with pytest.raises(InvalidArgumentError):
        optimize("Bad Name!", workspace=ws, **FAST)
    with pytest.raises(InvalidArgumentError, match="unknown target"):
        optimize("mlp:1", workspace=ws, target="tpu", **FAST)
    assert stored_state(ws) == before


def _write(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize(
    ("maker", "error", "text"),
    [
        (lambda p: p / "missing.npz", NotFoundError, "does not exist"),
        (lambda p: p.joinpath("text.npz").write_text("not numpy") and p / "text.npz",
         InvalidArgumentError, "not a readable .npz"),
        (lambda p: _write(p / "names.npz", features=np.zeros((4, 16), np.float32)),
         InvalidArgumentError, "lacks arrays for the model inputs ['X']"),
        (lambda p: _write(p / "dims.npz", X=np.zeros((4, 15), np.float32)),
         InvalidArgumentError, "has 15 at axis 1, the model wants 16"),
        (lambda p: _write(p / "rank.npz", X=np.zeros(16, np.float32)),
         InvalidArgumentError, "has shape [16]"),
        (lambda p: _write(p / "labels.npz", X=np.zeros((4, 16), np.float32), y=np.zeros(3)),
         InvalidArgumentError, "one label per sample"),
        (lambda p: _write(p / "text-x.npz", X=np.array([["a"] * 16] * 4)),
         InvalidArgumentError, "not numeric"),
        (lambda p: _write(p / "objects.npz", X=np.array([{"a": 1}], dtype=object)),
         InvalidArgumentError, "not a readable .npz"),
        (lambda p: _write(p / "extra.npz", X=np.zeros((4, 16), np.float32), Z=np.zeros(4)),
         InvalidArgumentError, "not model inputs"),
    ],
)  # fmt: skip
def test_bad_npz_files_give_clear_errors_and_store_nothing(
    ws: Workspace, tmp_path: Path, maker: Callable[[Path], Any], error: type[Exception], text: str
) -> None:
    path = maker(tmp_path)
    before = stored_state(ws)
    for option in ("validation", "calibration"):
        with pytest.raises(error) as caught:
            optimize("mlp:1", workspace=ws, **{option: path}, **FAST)
        assert text in str(caught.value)
        assert f"{option} file" in str(caught.value)
    assert stored_state(ws) == before


def test_limits_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="max-slowdown"):
        Limits(max_slowdown=0)
    with pytest.raises(InvalidArgumentError, match="max-abs-error"):
        Limits(max_abs_error=-1)


def test_labels_that_cannot_match_the_predictions_are_refused(
    ws: Workspace, tmp_path: Path
) -> None:
    x = np.zeros((4, 16), np.float32)
    np.savez(tmp_path / "names.npz", X=x, y=np.array(["setosa"] * 4))
    before = stored_state(ws)
    with pytest.raises(InvalidArgumentError, match="labels 'y' are <U6 but the model predicts"):
        optimize("mlp:1", workspace=ws, validation=tmp_path / "names.npz", **FAST)
    assert stored_state(ws) == before
