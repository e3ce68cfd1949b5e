"""A CycloneDX 1.5 SBOM of an image, written from what was installed into it.

Components: every distribution in the image's site-packages and amlpkg's own (name,
version, ``pkg:pypi`` purl, the SHA-256 of the wheel it came from), the model, and
the base image pinned by digest. Deterministic: the same image gives the same bytes
(the serial number is derived from the content, the timestamp is the build's epoch).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from amlpkg.packager.build.oci_builder.config import rfc3339
from amlpkg.packager.build.oci_builder.registry_io import ImageRef
from amlpkg.packager.build.recipe import ModelFacts

MEDIA_TYPE = "application/vnd.cyclonedx+json"
SPEC_VERSION = "1.5"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wheel_hashes(folders: list[Path]) -> dict[tuple[str, str], str]:
    """``(normalized name, version) -> sha256 hex`` of the wheels in ``folders``."""
    found: dict[tuple[str, str], str] = {}
    for folder in folders:
        for wheel in sorted(folder.glob("*.whl")):
            name, version = wheel.name.split("-")[:2]
            found[(_normalize(name), version)] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return found


def distributions(site_dirs: list[Path]) -> list[tuple[str, str]]:
    """``(name, version)`` of each ``*.dist-info`` in ``site_dirs``, sorted."""
    found = set()
    for site in site_dirs:
        for meta in site.glob("*.dist-info/METADATA"):
            headers = HeaderParser().parsestr(meta.read_text(encoding="utf-8", errors="replace"))
            if headers["Name"] and headers["Version"]:
                found.add((str(headers["Name"]), str(headers["Version"])))
    return sorted(found, key=lambda item: (_normalize(item[0]), item[1]))


def cyclonedx(
    *,
    image: ImageRef,
    platform: str,
    site_dirs: list[Path],
    wheel_dirs: list[Path],
    base: ImageRef,
    model: ModelFacts | None,
    epoch: int,
    tool_version: str,
) -> bytes:
    """The SBOM document's bytes (``model``: None for an image without one)."""
    hashes = _wheel_hashes(wheel_dirs)
    components: list[dict[str, Any]] = []
    for name, version in distributions(site_dirs):
        purl = f"pkg:pypi/{_normalize(name)}@{version}"
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": purl,
            "name": name,
            "version": version,
            "purl": purl,
        }
        digest = hashes.get((_normalize(name), version))
        if digest:
            component["hashes"] = [{"alg": "SHA-256", "content": digest}]
        components.append(component)
    base_purl = (
        f"pkg:oci/{base.repository.rsplit('/', 1)[-1]}@{base.digest}"
        f"?repository_url={base.host}/{base.repository}"
    )
    components.append({
        "type": "container",
        "bom-ref": base_purl,
        "name": f"{base.host}/{base.repository}",
        "version": str(base.digest),
        "purl": base_purl,
        "description": "base image",
        "hashes": [{"alg": "SHA-256", "content": str(base.digest).removeprefix("sha256:")}],
    })  # fmt: skip
    if model is not None:
        components.append({
            "type": "machine-learning-model",
            "bom-ref": f"model:{model.name}:{model.version}",
            "name": model.name,
            "version": str(model.version),
            "hashes": [{"alg": "SHA-256", "content": model.sha256}],
        })  # fmt: skip
    body = json.dumps(components, sort_keys=True).encode()
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, body.hex())}",
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(epoch),
            "tools": {"components": [
                {"type": "application", "name": "amlpkg", "version": tool_version}]},
            "component": {
                "type": "container",
                "bom-ref": "image",
                "name": f"{image.host}/{image.repository}",
                "version": str(image.tag or ""),
                "properties": [{"name": "platform", "value": platform}],
            },
        },
        "components": components,
    }  # fmt: skip
    return json.dumps(document, sort_keys=True, indent=1).encode()
