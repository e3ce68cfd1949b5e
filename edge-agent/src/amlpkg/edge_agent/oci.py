"""Find a model file inside an OCI artifact through the registry HTTP API (no Docker daemon).

The twin names ``oci://HOST[:PORT]/REPO@sha256:<manifest digest>`` (or ``:TAG``; the
older ``HOST/REPO:TAG`` without a scheme is still read). The manifest is fetched by
that digest and checked against it; the layer that holds the model is the one whose
digest is the desired model's sha256 (a ModelPack weight layer is the raw ONNX file,
so its digest is the file's). The download itself is an ordinary blob GET, so
:mod:`amlpkg.edge_agent.download` resumes it with HTTP ``Range`` like any URL.
Registries on ``localhost``/``127.0.0.1`` are spoken to over plain HTTP, others
over HTTPS; registries that demand a token are not supported here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from amlpkg.errors import (
    AmlpkgError,
    IntegrityError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_REF = re.compile(
    r"(oci://)?(?P<host>[A-Za-z0-9.-]+(:[0-9]+)?)/(?P<repo>[a-z0-9]+([._/-][a-z0-9]+)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(@(?P<digest>sha256:[0-9a-f]{64}))?"
)


@dataclass(frozen=True)
class OciReference:
    """``oci://HOST/REPO[:TAG][@sha256:...]`` split into its parts."""

    host: str
    repo: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> OciReference:
        """Parse a reference; anything else is refused with the form to use."""
        found = _REF.fullmatch(text)
        if found is None:
            raise InvalidArgumentError(
                f"{text[:200]!r} is not an OCI reference",
                hint="write oci://HOST[:PORT]/REPO@sha256:<64 hex> (or :TAG)",
            )
        return cls(found["host"], found["repo"], found["tag"], found["digest"])

    @property
    def base(self) -> str:
        """``http(s)://HOST/v2/REPO``: plain HTTP only for a registry on this machine."""
        local = self.host.split(":")[0] in ("localhost", "127.0.0.1")
        return f"{'http' if local else 'https'}://{self.host}/v2/{self.repo}"

    def blob_url(self, digest: str) -> str:
        """The registry API URL of one blob."""
        return f"{self.base}/blobs/{digest}"


def _manifest(ref: OciReference) -> dict[str, Any]:
    """The manifest by digest (checked) or tag (``latest`` when neither is given)."""
    target = ref.digest or ref.tag or "latest"
    request = urllib.request.Request(
        f"{ref.base}/manifests/{target}", headers={"Accept": MANIFEST_TYPES}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read(MAX_MANIFEST_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the answer's socket
        if exc.code == 404:
            raise NotFoundError(
                f"no manifest {target} in {ref.host}/{ref.repo}",
                hint="check the reference in the twin, and that the artifact was pushed",
            ) from None
        raise UnavailableError(f"registry {ref.host} answered HTTP {exc.code}") from None
    except OSError as exc:
        raise UnavailableError(
            f"cannot read the manifest of {ref.host}/{ref.repo}: {exc}",
            hint="check the registry address and that the device can reach it",
        ) from None
    if len(body) > MAX_MANIFEST_BYTES:
        raise IntegrityError(f"the manifest of {ref.host}/{ref.repo} is too large: refused")
    if ref.digest is not None:
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(actual, ref.digest):
            raise IntegrityError(
                f"manifest {ref.digest[:19]}… of {ref.host}/{ref.repo} has digest {actual[:19]}…",
                hint="the registry returned another manifest than the one pinned: refused",
            )
    try:
        data = json.loads(body)
    except ValueError:
        raise IntegrityError(f"the manifest of {ref.host}/{ref.repo} is not JSON") from None
    if not isinstance(data, dict):
        raise IntegrityError(f"the manifest of {ref.host}/{ref.repo} is not a JSON object")
    return data


def model_blob_url(reference: str, sha256_hex: str) -> str:
    """The blob URL of the layer of ``reference`` that is the model ``sha256_hex``.

    Raises :class:`IntegrityError` when no layer is that file (the twin's digest and
    the artifact disagree), :class:`UnavailableError` when the registry is unreachable.
    """
    ref = OciReference.parse(reference)
    wanted = f"sha256:{sha256_hex}"
    layers = _manifest(ref).get("layers") or []
    for layer in layers:
        if isinstance(layer, dict) and layer.get("digest") == wanted:
            return ref.blob_url(wanted)
    raise IntegrityError(
        f"no layer of {reference[:200]} is the desired model (sha256 {sha256_hex[:12]}…)",
        hint="push the model as a ModelPack artifact (amlpkg push) and name its digest",
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m amlpkg.edge_agent.oci REF SHA256 DIR``: fetch a model into ``DIR/model.onnx``.

    What a Kubernetes init container of the agent image runs to put an ``oci://``
    model into the pod's model volume (digest checked, resumed on a retry).
    """
    import argparse
    import os
    import sys
    from pathlib import Path

    from amlpkg.edge_agent.desired import DesiredModel
    from amlpkg.edge_agent.download import fetch_model

    parser = argparse.ArgumentParser(prog="python -m amlpkg.edge_agent.oci")
    parser.add_argument("reference", help="oci://HOST/REPO@sha256:...")
    parser.add_argument("sha256", help="hex SHA-256 of the model file")
    parser.add_argument("folder", type=Path, help="version folder to write model.onnx into")
    args = parser.parse_args(argv)
    try:
        desired = DesiredModel(name="model", version="1", sha256=args.sha256, oci=args.reference)
        work = args.folder.parent / ".amlpkg-fetch"
        path = fetch_model(desired, work / "staging", work / "cache")
        args.folder.mkdir(parents=True, exist_ok=True)
        os.replace(path, args.folder / "model.onnx")
    except (AmlpkgError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"fetched {args.reference} -> {args.folder / 'model.onnx'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
