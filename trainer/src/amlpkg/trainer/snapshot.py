"""Code and environment snapshots taken when a tracked run starts.

In a git repository: the commit is in the run row, and the uncommitted state is
kept as ``code/diff.patch`` (``git diff HEAD``) plus ``code/untracked.txt``.
Elsewhere: ``code/project.tar.gz`` of the project files (no workspace, VCS or
virtualenv folders), capped in size. ``pip freeze`` goes to
``environment/requirements.txt``; a failure there is recorded, never fatal.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

from amlpkg.store.workspace import Workspace
from amlpkg.trainer.provenance import git
from amlpkg.trainer.store import runs as store_runs

_SKIP_DIRS = frozenset(
    {
        ".amlpkg",
        ".git",
        ".hg",
        ".venv",
        "venv",
        "env",
        "__pycache__",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
    }
)


def _log_bytes(ws: Workspace, run_id: str, path: str, data: bytes) -> None:
    digest, size = ws.artifacts.put_bytes(data)
    store_runs.add_artifact(ws, run_id, path, digest, size)


def snapshot_code(ws: Workspace, run_id: str, cwd: Path, max_bytes: int) -> str:
    """Store the code state of ``cwd`` for the run; return how (``git`` or ``tarball``)."""
    top = git(cwd, "rev-parse", "--show-toplevel")
    if top is not None:
        root = Path(top.strip())
        diff = git(root, "diff", "HEAD", "--binary") or ""
        untracked = git(root, "ls-files", "--others", "--exclude-standard") or ""
        _log_bytes(ws, run_id, "code/diff.patch", diff.encode())
        _log_bytes(ws, run_id, "code/untracked.txt", untracked.encode())
        return "git"
    data, truncated = project_tarball(cwd, max_bytes)
    _log_bytes(ws, run_id, "code/project.tar.gz", data)
    if truncated:
        store_runs.set_tags(ws, run_id, {"code_snapshot_truncated": "true"})
    return "tarball"


def _project_files(root: Path) -> list[Path]:
    files: list[Path] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if entry.name not in _SKIP_DIRS and not (entry / "pyvenv.cfg").exists():
                    stack.append(entry)
            elif entry.is_file():
                files.append(entry)
    return files


def project_tarball(root: Path, max_bytes: int) -> tuple[bytes, bool]:
    """A tar.gz of the project files under ``root``; True if files were left out for size."""
    buffer = io.BytesIO()
    total = 0
    truncated = False
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in _project_files(root):
            size = path.stat().st_size
            if total + size > max_bytes:
                truncated = True
                continue
            total += size
            tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
    return buffer.getvalue(), truncated


def snapshot_environment(ws: Workspace, run_id: str) -> bool:
    """Store ``pip freeze`` of this interpreter; return False (and tag why) if it failed."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "freeze", "--disable-pip-version-check"],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        store_runs.set_tags(ws, run_id, {"pip_freeze_error": str(exc)[:500]})
        return False
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()[-500:]
        store_runs.set_tags(ws, run_id, {"pip_freeze_error": message or "pip freeze failed"})
        return False
    _log_bytes(ws, run_id, "environment/requirements.txt", done.stdout)
    return True
