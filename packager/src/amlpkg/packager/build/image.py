"""Build, push and inspect an image through the docker SDK's low-level API.

The engine's JSON stream is turned into callbacks (``on_step(done, total, text)``
per Dockerfile step) for a progress display, and its errors into :class:`BuildError`
carrying the failing step and the tail of its log.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.build.engine import docker_client
from amlpkg.packager.build.errors import BuildError, tail

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_TAG = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
                  r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")  # fmt: skip
BUILD_TIMEOUT_S = 1800
_PUSH_DONE = ("Pushed", "Layer already exists", "Mounted from")
StepCallback = Callable[[int, int, str], None]


def _no_step(done: int, total: int, text: str) -> None:
    """Default step callback: say nothing."""


@dataclass(frozen=True)
class BuiltImage:
    """What the engine reports about a built (and maybe pushed) image."""

    ref: str
    id: str
    size: int
    layers: tuple[str, ...]
    """RootFS diff ids, base first: equal prefixes mean shared (cached) layers."""
    labels: dict[str, str]
    repo_digest: str | None = None


def split_ref(ref: str) -> tuple[str, str]:
    """``(repository, tag)`` of an image reference; the tag defaults to ``latest``."""
    if not _TAG.match(ref):
        raise InvalidArgumentError(
            f"invalid image reference {ref!r}",
            hint="use REGISTRY/NAME:TAG in lower case, e.g. 127.0.0.1:5000/iris:1",
        )
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = ref.rpartition(":")
        return repository, tag
    return ref, "latest"


def consume_build_stream(events: Iterable[dict[str, Any]], on_step: StepCallback) -> str:
    """Follow a decoded build stream; return the built image id or raise with the log tail."""
    log: list[str] = []
    image_id: str | None = None
    step = "(before the first step)"
    for event in events:
        text = str(event.get("stream", ""))
        if text:
            log.append(text.rstrip("\n"))
            match = _STEP.match(text.strip())
            if match:
                step = match.group(3)
                on_step(int(match.group(1)), int(match.group(2)), step)
        if "error" in event:
            detail = event.get("errorDetail", {}).get("message") or event["error"]
            text = tail(chr(10).join(log))
            hint = "fix the cause shown above; pass --output DIR to keep the build context"
            if "exec format error" in f"{text} {detail}":
                hint = (
                    "the step ran binaries of another architecture: building for another"
                    " --platform needs QEMU user emulation registered in binfmt_misc"
                    " (e.g. the qemu-user-static package)"
                )
            elif step.upper().startswith("FROM "):
                hint = (
                    "the Docker engine could not get the base image (no registry reachable?):"
                    " pass --local-base to build on a Debian base made on this machine"
                    " (debootstrap, about a minute, once), or --base-image with an image"
                    " that `docker images` lists"
                )
            raise BuildError(
                f"the image build failed at step `{step[:200]}`: {detail}\n"
                f"--- last lines of the build log ---\n{text}",
                hint=hint,
            )
        aux = event.get("aux")
        if isinstance(aux, dict) and "ID" in aux:
            image_id = str(aux["ID"])
    if image_id is None:
        raise BuildError(f"the engine reported no image id\n{tail(chr(10).join(log))}")
    return image_id


def build_image(
    context: Path,
    ref: str,
    *,
    platform: str | None = None,
    no_cache: bool = False,
    on_step: StepCallback = _no_step,
    host: str | None = None,
) -> BuiltImage:
    """Build ``context/Dockerfile`` into ``ref`` with the classic builder; layers are cached.

    ``host``: the engine (default ``DOCKER_HOST``); the context goes to it through the API.
    """
    import docker

    split_ref(ref)
    client = docker_client(timeout=BUILD_TIMEOUT_S, host=host)
    try:
        stream = client.api.build(
            path=str(context),
            tag=ref,
            rm=True,
            forcerm=True,
            decode=True,
            platform=platform,
            nocache=no_cache,
        )
        try:
            consume_build_stream(stream, on_step)
        finally:
            _drain(stream)
        return inspect_image(ref, host=host)
    except docker.errors.APIError as exc:
        raise BuildError(f"the Docker engine refused the build: {exc.explanation or exc}") from exc
    finally:
        client.close()


def inspect_image(ref: str, host: str | None = None) -> BuiltImage:
    """Id, size, layers, labels and (when pushed) the repo digest of an image of the engine
    at ``host`` (default ``DOCKER_HOST``)."""
    import docker

    client = docker_client(host=host)
    try:
        data = client.api.inspect_image(ref)
    except docker.errors.ImageNotFound as exc:
        raise BuildError(f"no local image {ref}") from exc
    finally:
        client.close()
    labels = dict((data.get("Config") or {}).get("Labels") or {})
    repository = split_ref(ref)[0]
    digests = [d for d in data.get("RepoDigests") or [] if d.startswith(repository + "@")]
    return BuiltImage(
        ref=ref,
        id=str(data["Id"]),
        size=int(data.get("Size") or 0),
        layers=tuple(data.get("RootFS", {}).get("Layers") or ()),
        labels=labels,
        repo_digest=digests[0] if digests else None,
    )


def _drain(events: Iterable[Any]) -> None:
    """Read a stream to its end (the engine ends it right after an error event).

    A stream left half-read keeps its HTTP connection open past ``client.close()``,
    and the socket is then only closed by the garbage collector.
    """
    with contextlib.suppress(Exception):
        for _ in events:
            pass


def push_image(ref: str, *, on_status: Callable[[str], None] | None = None) -> str:
    """Push ``ref``; return ``REPOSITORY@sha256:...`` as the registry stored it."""
    import docker

    repository, tag = split_ref(ref)
    client = docker_client(timeout=BUILD_TIMEOUT_S)
    digest: str | None = None
    try:
        events = client.api.push(repository, tag=tag, stream=True, decode=True)
        try:
            for event in events:
                if "error" in event:
                    raise BuildError(
                        f"pushing {ref} failed: {event['error']}",
                        hint="check that the registry is reachable and accepts pushes (log in"
                        " with docker login; plain-HTTP registries other than localhost must be"
                        " listed in the engine's insecure-registries)",
                    )
                aux = event.get("aux")
                if isinstance(aux, dict) and "Digest" in aux:
                    digest = str(aux["Digest"])
                status = str(event.get("status", ""))
                # One line per layer when it is done, not one per chunk sent.
                if on_status is not None and event.get("id") and status.startswith(_PUSH_DONE):
                    on_status(f"layer {event['id']}: {status}")
        finally:
            _drain(events)
    except docker.errors.APIError as exc:
        raise BuildError(f"pushing {ref} failed: {exc.explanation or exc}") from exc
    finally:
        client.close()
    if digest is None:
        raise BuildError(f"the registry reported no digest for {ref}")
    return f"{repository}@{digest}"


def remove_image(ref: str) -> None:
    """Remove a local image (no error when it is gone already)."""
    import docker

    client = docker_client()
    try:
        client.api.remove_image(ref, force=True, noprune=False)
    except docker.errors.ImageNotFound:
        pass
    finally:
        client.close()
