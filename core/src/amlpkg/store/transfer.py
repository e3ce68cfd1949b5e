"""Move a whole workspace between stores: ``export_workspace`` / ``import_workspace``.

The archive is one uncompressed tar:

- ``manifest.json``: format and version, the schema revisions, every table with its
  row count (in foreign-key order) and every blob with its size;
- ``tables/<table>.jsonl``: the table's rows, one JSON object per line;
- ``blobs/sha256/<digest>``: each artifact blob.

Tables are reflected from the database rather than listed here, so a role's new
table travels without a change to this module. Ids (run ids, model versions,
lineage edge rows) are kept as they are, which is why an import only goes into an
empty workspace at the same schema revisions.

An archive is untrusted input: members are never extracted by name, only read as
streams; every member name must be one the manifest announces (no links, folders
or extra files); lines and the manifest are read with a size limit; every blob is
hashed before anything is written, and its digest checked again as it is stored.
All rows go in one transaction, so a failed import leaves no rows behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from sqlalchemy import Connection, Integer, MetaData, Table, func, select, text

from amlpkg.errors import FailedPreconditionError, IntegrityError, InvalidArgumentError
from amlpkg.store.artifacts import _CHUNK, _DIGEST
from amlpkg.store.db import write_tx
from amlpkg.store.schema_upgrade import current_revisions
from amlpkg.store.workspace import Workspace

FORMAT = "amlpkg-workspace"
VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_ROW_BYTES = 64 * 1024 * 1024
MAX_MEMBERS = 10_000_000
_BATCH = 500
_SKIPPED = frozenset({"alembic_version", "schema_branches"})  # schema bookkeeping
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TABLE_MEMBER = re.compile(r"^tables/([a-z_][a-z0-9_]{0,62})\.jsonl$")
_BLOB_MEMBER = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")
_LOCK = "amlpkg:workspace-import"


@dataclass(frozen=True)
class TransferSummary:
    """What an export wrote or an import read."""

    tables: dict[str, int]
    blobs: int
    blob_bytes: int


def _tables(conn: Connection) -> list[Table]:
    """The workspace's tables, parents before children."""
    meta = MetaData()
    meta.reflect(bind=conn)
    return [t for t in meta.sorted_tables if t.name not in _SKIPPED]


def _referenced_digests(conn: Connection, tables: list[Table]) -> set[str]:
    """Digests named by any ``sha256`` column (artifacts, model versions, variants)."""
    found: set[str] = set()
    for table in tables:
        if "sha256" in table.c:
            for (value,) in conn.execute(select(table.c.sha256).distinct()):
                if isinstance(value, str) and _DIGEST.match(value):
                    found.add(value)
    return found


def export_workspace(ws: Workspace, archive: Path) -> TransferSummary:
    """Write every table and every stored or referenced blob of ``ws`` to the tar ``archive``."""
    archive = Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix=".tmp-export-", dir=archive.parent) as tmp:
        work = Path(tmp)
        with _snapshot(ws) as conn:
            revisions = sorted(current_revisions(conn))
            tables = _tables(conn)
            for table in tables:
                counts[table.name] = _dump_table(conn, table, work / f"{table.name}.jsonl")
            digests = _referenced_digests(conn, tables)
        digests |= set(ws.artifacts.iter_digests())
        missing = sorted(d for d in digests if not ws.artifacts.exists(d))
        if missing:
            raise IntegrityError(
                f"{len(missing)} referenced artifact(s) are missing from the store,"
                f" e.g. {missing[0]}",
                hint="restore them before exporting; an archive without them would be incomplete",
            )
        blobs = {d: ws.artifacts.verified_path(d) for d in sorted(digests)}
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "revisions": revisions,
            "tables": [{"name": name, "rows": n} for name, n in counts.items()],
            "blobs": [{"sha256": d, "size": p.stat().st_size} for d, p in blobs.items()],
        }
        partial = work / "archive.tar"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            data = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            for name in counts:
                tar.add(work / f"{name}.jsonl", arcname=f"tables/{name}.jsonl", recursive=False)
            for digest, path in blobs.items():
                tar.add(path, arcname=f"blobs/sha256/{digest}", recursive=False)
        os.replace(partial, archive)
    return TransferSummary(counts, len(blobs), sum(p.stat().st_size for p in blobs.values()))


@contextmanager
def _snapshot(ws: Workspace) -> Iterator[Connection]:
    """A read-only connection that sees one consistent state of the database."""
    conn = ws.engine.connect()
    if ws.db.dialect == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    try:
        conn.begin()
        yield conn
    finally:
        conn.rollback()
        conn.close()


def _dump_table(conn: Connection, table: Table, path: Path) -> int:
    order = list(table.primary_key.columns) or list(table.columns)
    query = select(table).order_by(*order)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        result = conn.execution_options(yield_per=1000).execute(query)
        for row in result.mappings():
            out.write(json.dumps(dict(row), separators=(",", ":")) + "\n")
            count += 1
    return count


# -- import ---------------------------------------------------------------------------


def _bad(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"not a valid workspace archive: {message}",
        hint="use an archive written by `amlpkg workspace export`",
    )


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Regular-file members by name; anything else (links, folders, devices, repeats) refused."""
    found: dict[str, tarfile.TarInfo] = {}
    for count, member in enumerate(tar, start=1):
        if count > MAX_MEMBERS:
            raise _bad(f"more than {MAX_MEMBERS} members")
        name = member.name
        if not member.isreg():
            raise _bad(f"member {name!r} is not a regular file")
        if name != MANIFEST and not (_TABLE_MEMBER.match(name) or _BLOB_MEMBER.match(name)):
            raise _bad(f"unexpected member name {name!r}")
        if name in found:
            raise _bad(f"member {name!r} appears twice")
        found[name] = member
    return found


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    handle = tar.extractfile(member)
    if handle is None:  # pragma: no cover - regular files always have a stream
        raise _bad(f"member {member.name!r} cannot be read")
    return handle


@dataclass(frozen=True)
class _Manifest:
    revisions: list[str]
    tables: dict[str, int]
    blobs: dict[str, int]


def _manifest(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> _Manifest:
    member = members.get(MANIFEST)
    if member is None:
        raise _bad(f"no {MANIFEST}")
    if member.size > MAX_MANIFEST_BYTES:
        raise _bad(f"{MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        doc = json.loads(_read(tar, member).read(MAX_MANIFEST_BYTES + 1))
        if doc["format"] != FORMAT:
            raise _bad(f"format {doc['format']!r}, expected {FORMAT!r}")
        if doc["version"] != VERSION:
            raise _bad(f"format version {doc['version']!r}; this amlpkg reads {VERSION}")
        revisions = [str(r) for r in doc["revisions"]]
        tables = {str(t["name"]): int(t["rows"]) for t in doc["tables"]}
        blobs = {str(b["sha256"]): int(b["size"]) for b in doc["blobs"]}
    except (ValueError, KeyError, TypeError) as err:
        raise _bad(f"unreadable {MANIFEST} ({err})") from err
    if len(tables) != len(doc["tables"]) or len(blobs) != len(doc["blobs"]):
        raise _bad("the manifest names a table or blob twice")
    for name in tables:
        if not _TABLE.match(name) or name in _SKIPPED:
            raise _bad(f"bad table name {name!r}")
    for digest in blobs:
        if not _DIGEST.match(digest):
            raise _bad(f"bad blob digest {digest!r}")
    expected = {MANIFEST}
    expected |= {f"tables/{name}.jsonl" for name in tables}
    expected |= {f"blobs/sha256/{digest}" for digest in blobs}
    if set(members) != expected:
        odd = sorted(set(members) ^ expected)
        raise _bad(f"members and manifest disagree ({', '.join(odd[:3])})")
    return _Manifest(revisions, tables, blobs)


def _hash(stream: IO[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _verify_blobs(
    tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], blobs: dict[str, int]
) -> None:
    for digest, size in blobs.items():
        actual, actual_size = _hash(_read(tar, members[f"blobs/sha256/{digest}"]))
        if (actual, actual_size) != (digest, size):
            raise IntegrityError(
                f"the archive's blob {digest} has sha256 {actual} ({actual_size} bytes,"
                f" {size} expected): the archive is corrupt or was tampered with",
                hint="export the workspace again; nothing was imported",
            )


def _rows(stream: IO[bytes], table: Table) -> Iterator[dict[str, Any]]:
    columns = set(table.c.keys())
    while line := stream.readline(MAX_ROW_BYTES + 1):
        if len(line) > MAX_ROW_BYTES:
            raise _bad(f"a row of {table.name} is larger than {MAX_ROW_BYTES} bytes")
        try:
            row = json.loads(line)
        except ValueError as err:
            raise _bad(f"a row of {table.name} is not JSON ({err})") from err
        if not isinstance(row, dict) or not set(row) <= columns:
            raise _bad(f"a row of {table.name} has columns the workspace does not know")
        yield row


def _require_empty(conn: Connection, tables: list[Table], where: str) -> None:
    for table in tables:
        if conn.execute(select(text("1")).select_from(table).limit(1)).first() is not None:
            raise FailedPreconditionError(
                f"the target workspace {where} is not empty (table {table.name} has rows)",
                hint="import into a new, empty workspace (a new folder, or a new database and"
                " bucket prefix); nothing was imported",
            )


def _reset_sequences(conn: Connection, tables: list[Table]) -> None:
    """PostgreSQL: move each serial/identity sequence past the ids just inserted."""
    for table in tables:
        for column in table.primary_key.columns:
            if not isinstance(column.type, Integer):
                continue
            seq = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
            ).scalar()
            if seq is None:
                continue
            top = conn.execute(select(func.max(column))).scalar()
            if top is not None:
                conn.execute(text("SELECT setval(:s, :v)"), {"s": seq, "v": int(top)})


def import_workspace(ws: Workspace, archive: Path) -> TransferSummary:
    """Load the tar ``archive`` (from :func:`export_workspace`) into the empty workspace ``ws``."""
    archive = Path(archive)
    if not archive.is_file():
        raise InvalidArgumentError(f"no archive at {archive}", hint="give the exported .tar file")
    where = ws.db.url if not ws.embedded else str(ws.home)
    try:
        tar = tarfile.open(archive, "r:")  # noqa: SIM115 - closed by the `with tar` below
    except tarfile.TarError as err:
        raise _bad(f"{archive} is not an uncompressed tar ({err})") from err
    with tar:
        try:
            members = _members(tar)
            manifest = _manifest(tar, members)
            with ws.db.connection() as conn:
                revisions = sorted(current_revisions(conn))
                tables = _tables(conn)
                _require_empty(conn, tables, where)
            if sorted(manifest.revisions) != revisions:
                raise FailedPreconditionError(
                    f"the archive's schema revisions {sorted(manifest.revisions)} differ from the"
                    f" target's {revisions}",
                    hint="install the same amlpkg release on both sides (export after upgrading)",
                )
            known = {t.name: t for t in tables}
            unknown = sorted(set(manifest.tables) - set(known))
            if unknown:
                raise _bad(f"tables the workspace does not have: {', '.join(unknown)}")
            _verify_blobs(tar, members, manifest.blobs)
            with write_tx(ws.db, lock=_LOCK), ws.db.connection() as conn:
                _require_empty(conn, tables, where)
                for table in tables:  # the target's foreign-key order
                    if table.name in manifest.tables:
                        _load_table(tar, members, conn, table, manifest.tables[table.name])
                if ws.db.dialect == "postgresql":
                    _reset_sequences(conn, tables)
                sizes = _store_blobs(ws, tar, members, manifest.blobs)
        except tarfile.TarError as err:
            raise _bad(f"the tar is damaged ({err})") from err
    return TransferSummary(dict(manifest.tables), len(manifest.blobs), sizes)


def _load_table(
    tar: tarfile.TarFile,
    members: dict[str, tarfile.TarInfo],
    conn: Connection,
    table: Table,
    expected: int,
) -> None:
    count = 0
    batch: list[dict[str, Any]] = []
    for row in _rows(_read(tar, members[f"tables/{table.name}.jsonl"]), table):
        batch.append(row)
        count += 1
        if len(batch) >= _BATCH:
            conn.execute(table.insert(), batch)
            batch = []
    if batch:
        conn.execute(table.insert(), batch)
    if count != expected:
        raise _bad(f"table {table.name} has {count} rows, the manifest says {expected}")


def _store_blobs(
    ws: Workspace, tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], blobs: dict[str, int]
) -> int:
    total = 0
    for digest in blobs:
        stored, size = ws.artifacts.put_stream(
            cast(BinaryIO, _read(tar, members[f"blobs/sha256/{digest}"]))
        )
        if stored != digest:  # the file changed since it was verified
            raise IntegrityError(
                f"the archive's blob {digest} changed while importing (now {stored})",
                hint="do not modify the archive during an import; nothing was imported",
            )
        total += size
    return total
