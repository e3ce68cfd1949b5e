"""``amlpkg push`` against a team server: the version comes from the server, the push from here.

The version's file (sha256 checked) and, when it is signed there, its bundle,
release and provenance (each checked against the server's record) are fetched into
a temp folder and pushed to the registry from this machine, as from a workspace.
A push changes nothing on the server, so a reader token may push.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from amlpkg.packager.oci.modelpack import Pushed, PushSource, push_source
from amlpkg.packager.oci.registry import Reference
from amlpkg.release import MODEL_FILE
from amlpkg.trainer.remote.backend import RemoteBackend
from amlpkg.trainer.remote.config import Server
from amlpkg.trainer.remote.model_files import download_version_file
from amlpkg.trainer.remote.signatures import fetch_signature


def push_from_server(server: Server, ref: str, target: str) -> Pushed:
    """:func:`amlpkg.packager.oci.modelpack.push_model_version` for a version of ``server``."""
    where = Reference.parse(target)  # a bad target is refused before any download
    backend = RemoteBackend(server)
    client = backend.client
    try:
        version = backend.get_model_version(ref)
        with tempfile.TemporaryDirectory(prefix="amlpkg-remote-push-") as tmp:
            model = Path(tmp) / MODEL_FILE
            download_version_file(client, version.name, version.version, version.sha256, model)
            signed = fetch_signature(client, version)
            return push_source(PushSource(version, model, signed), where)
    finally:
        backend.close()
