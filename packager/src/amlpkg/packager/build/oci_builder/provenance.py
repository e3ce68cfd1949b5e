"""An in-toto SLSA v1 provenance statement for an image built with ``--builder oci``.

Its subject is the image manifest; its dependencies are everything the build read:
the base image (by digest), the model file, each wheel and amlpkg's own revision.
No wall-clock time goes in, so a rebuild of the same inputs attaches the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from amlpkg.packager.build.oci_builder.registry_io import ImageRef
from amlpkg.packager.build.recipe import ModelFacts
from amlpkg.trainer.slsa import PREDICATE_TYPE, STATEMENT_TYPE

MEDIA_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "https://amlpkg.dev/buildtypes/oci-image/v1"
BUILDER_ID = "https://amlpkg.dev/builders/amlpkg-packager-oci@v1"


def statement(
    *,
    image: ImageRef,
    digest: str,
    platform: str,
    base: ImageRef,
    model: ModelFacts | None,
    model_ref: str,
    flavor: str,
    wheel_dirs: list[Path],
    revision: str,
    epoch: int,
    tool_version: str,
) -> bytes:
    """The statement's bytes (sorted keys); ``model`` None for an image without one."""
    deps: list[dict[str, Any]] = [
        {"uri": f"oci://{base.host}/{base.repository}@{base.digest}",
         "digest": {"sha256": str(base.digest).removeprefix("sha256:")}},
    ]  # fmt: skip
    if model is not None:
        deps.append(
            {"name": f"model:{model.name}:{model.version}", "digest": {"sha256": model.sha256}}
        )
    deps.append({"uri": "git+amlpkg", "digest": {"gitCommit": revision}})
    for folder in wheel_dirs:
        for wheel in sorted(folder.glob("*.whl")):
            deps.append({
                "name": wheel.name,
                "digest": {"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()},
            })  # fmt: skip
    document = {
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": f"{image.host}/{image.repository}",
            "digest": {"sha256": digest.removeprefix("sha256:")},
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "model": model_ref, "flavor": flavor, "platform": platform,
                    "tag": str(image.tag or ""),
                    "variant": (model.variant if model is not None else None) or "",
                },
                "internalParameters": {"SOURCE_DATE_EPOCH": epoch},
                "resolvedDependencies": deps,
            },
            "runDetails": {"builder": {"id": BUILDER_ID, "version": {"amlpkg": tool_version}}},
        },
    }  # fmt: skip
    return json.dumps(document, sort_keys=True).encode()
