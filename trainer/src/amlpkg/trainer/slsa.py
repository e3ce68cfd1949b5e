"""An in-toto SLSA v1 provenance statement for a registered model version.

It names what made the model: the run (id, command, start/end), the code commit
(and whether the tree was dirty), the digests of the run's artifacts (its data and
files), the ONNX exporter, and the optimize settings when the file is a variant.
Its digest goes into the signed release file, so it is covered by the signature.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from amlpkg.errors import NotFoundError
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.registry import ModelVersion
from amlpkg.trainer.store import queries
from amlpkg.trainer.store import runs as store_runs
from amlpkg.trainer.store.runs import RunRecord

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://amlpkg.dev/buildtypes/model-version/v1"
BUILDER_ID = "https://amlpkg.dev/builders/amlpkg-trainer@v1"


def _rfc3339(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _run_part(
    run_id: str, run: RunRecord | None, artifacts: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """(run parameters, resolved dependencies, run metadata) of the run that made it."""
    if run is None:
        return {"run": run_id, "missing": True}, [], {"invocationId": run_id}
    deps: list[dict[str, Any]] = []
    if run.info.git_commit:
        deps.append({"uri": "git+commit", "digest": {"gitCommit": run.info.git_commit}})
    for artifact in artifacts:
        deps.append(
            {
                "name": f"runs:/{run.id}/{artifact['path']}",
                "digest": {"sha256": artifact["sha256"]},
            }
        )
    params = {
        "run": run.id,
        "experiment": run.experiment,
        "command": run.info.command,
        "git_dirty": run.info.git_dirty,
        "params": run.params,
        "exporter": run.tags.get("onnx_exporter"),
    }
    metadata = {
        "invocationId": run.id,
        "startedOn": _rfc3339(run.start_time),
        "finishedOn": _rfc3339(run.end_time),
    }
    return params, deps, metadata


def provenance_statement(
    ws: Workspace,
    version: ModelVersion,
    optimize: dict[str, Any] | None = None,
    *,
    subject: tuple[str, str] | None = None,
) -> bytes:
    """The statement's canonical JSON bytes, its subject the version's ONNX file.

    ``subject``: ``(name, sha256)`` of an optimized variant of the version; the
    version's own file is then a resolved dependency of the statement.
    """
    run, artifacts = None, []
    if version.run_id is not None:
        try:
            run = queries.get_run(ws, version.run_id)
        except NotFoundError:
            run = None
        else:
            artifacts = store_runs.list_artifacts(ws, run.id)
    return statement_of(version, run, artifacts, optimize, subject=subject)


def statement_of(
    version: ModelVersion,
    run: RunRecord | None,
    artifacts: list[dict[str, Any]],
    optimize: dict[str, Any] | None = None,
    *,
    subject: tuple[str, str] | None = None,
) -> bytes:
    """:func:`provenance_statement` from the version's ``run`` (None: not found) and its
    ``artifacts`` (path and sha256 of each), wherever they were read."""
    external: dict[str, Any] = {"model": version.ref, "source": version.source}
    deps: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {"invocationId": version.ref}
    exporter = version.tags.get("onnx_exporter")
    if version.run_id is not None:
        run_params, deps, metadata = _run_part(version.run_id, run, artifacts)
        external["run"] = run_params
        exporter = exporter or run_params.get("exporter")
    name, digest = subject or (f"{version.ref}/model.onnx", version.sha256)
    if subject is not None:
        source = {"name": f"models:/{version.ref}/model.onnx", "digest": {"sha256": version.sha256}}
        deps = [source, *deps]
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {
                    "exporter": exporter,
                    "opset": version.opset,
                    "optimize": optimize,
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID},
                "metadata": {**metadata, "signedOn": _rfc3339(time.time())},
            },
        },
    }
    return json.dumps(statement, sort_keys=True, indent=1).encode() + b"\n"
