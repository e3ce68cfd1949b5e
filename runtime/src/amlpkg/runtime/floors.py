"""The highest signed version each model has served, kept across restarts.

A signed release carries a monotonically increasing version, and a version below the
highest one served is a replay of an older (maybe vulnerable) model. Kept in memory
only, that floor resets when the server restarts, and a replay right after a restart
would load. With a state folder (``AMLPKG_SERVER_STATE_DIR``, a volume that outlives the
container), the floors are in ``signed-floors.json`` there: read at start, raised and
rewritten atomically when a newer signed version loads. Worker processes of one server
share the file; a lock file serializes their read-raise-write.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from amlpkg.errors import FailedPreconditionError

FILE = "signed-floors.json"
log = logging.getLogger("amlpkg.runtime.floors")


class Floors:
    """Model name -> the lowest signed version it may load; persisted when ``folder`` is set."""

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder
        self._floors: dict[str, int] = {}
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with self._locked():
                    self._floors = self._read()
            except OSError as exc:
                raise FailedPreconditionError(
                    f"cannot use the state folder {folder}: {exc.strerror or exc}",
                    hint="give the server a writable folder (a volume) or unset "
                    "AMLPKG_SERVER_STATE_DIR",
                ) from None

    def get(self, name: str) -> int | None:
        """The floor of ``name``, if it has served a signed version."""
        return self._floors.get(name)

    def raise_to(self, name: str, version: int) -> None:
        """Record that ``name`` served signed ``version`` (a floor never goes down)."""
        if version <= self._floors.get(name, 0):
            return
        self._floors[name] = version
        if self._folder is None:
            return
        try:
            with self._locked():
                merged = self._read()
                for model, floor in self._floors.items():
                    merged[model] = max(merged.get(model, 0), floor)
                self._write(merged)
                self._floors = merged
        except OSError as exc:  # the model serves; the floor stays in memory
            log.error("cannot record the signed version floor of %s: %s", name, exc)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        assert self._folder is not None
        with open(self._folder / f".{FILE}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _read(self) -> dict[str, int]:
        assert self._folder is not None
        try:
            raw = json.loads((self._folder / FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            log.error("%s is not JSON; starting from the versions served now", FILE)
            return {}
        if not isinstance(raw, dict):
            return {}
        return {str(k): v for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)}

    def _write(self, floors: dict[str, int]) -> None:
        assert self._folder is not None
        scratch = self._folder / f".{FILE}.{os.getpid()}"
        with open(scratch, "w", encoding="utf-8") as out:
            json.dump(floors, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(scratch, self._folder / FILE)
