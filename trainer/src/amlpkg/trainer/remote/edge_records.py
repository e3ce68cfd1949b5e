"""Device tags and edge agent images written to a team server (its ``edge`` routes).

``amlpkg devices tag|import-tags`` and ``amlpkg build --flavor edge-agent`` work here
(the IoT Hub query, the image build and push) and record what they did there; the
server writes with the same store functions as the embedded path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from amlpkg.trainer.remote.client import TeamClient
from amlpkg.trainer.remote.model_files import require_contributor

Json = dict[str, Any]
DEVICES_PER_REQUEST = 500
"""Below the server's 1000 per request; a part also stays under its JSON body limit."""
BYTES_PER_REQUEST = 512 * 1024


def tag_device(client: TeamClient, device_id: str, patch: dict[str, str | None]) -> Json:
    """Merge ``patch`` into the device's tags (None removes one); answer its record."""
    url = f"/device-records/{quote(device_id, safe='')}/tags"
    return dict(client.request("PATCH", url, json={"tags": patch}).json())


def _parts(pages: Iterable[dict[str, dict[str, Any]]]) -> Iterable[dict[str, dict[str, Any]]]:
    """The pages' devices in requests of at most :data:`DEVICES_PER_REQUEST` and about
    :data:`BYTES_PER_REQUEST` each."""
    part: dict[str, dict[str, Any]] = {}
    size = 0
    for page in pages:
        for device_id, tags in page.items():
            entry = len(json.dumps({device_id: tags}))
            if part and (len(part) >= DEVICES_PER_REQUEST or size + entry > BYTES_PER_REQUEST):
                yield part
                part, size = {}, 0
            part[device_id] = tags
            size += entry
    if part:
        yield part


def import_tags(client: TeamClient, pages: Iterable[dict[str, dict[str, Any]]]) -> Json:
    """Give each device of ``pages`` exactly its tags on the server: ``{imported, refused}``.

    A reader token is refused before the first page is read (the hub's query is lazy).
    """
    require_contributor(client, "amlpkg devices import-tags")
    done: Json = {"imported": [], "refused": {}}
    for part in _parts(pages):
        answer = client.request("PUT", "/device-records/tags", json={"devices": part}).json()
        done["imported"] += answer["imported"]
        done["refused"].update(answer["refused"])
    return done


def record_agent_image(client: TeamClient, platform: str, image: str, relation: str) -> None:
    """Record one agent image built for ``platform`` (``pushed_as`` by digest, or ``built_as``)."""
    body = {"platform": platform, "image": image, "relation": relation}
    client.request("POST", "/agent-images", json=body)


def agent_images(client: TeamClient) -> dict[str, str]:
    """``{platform: REPOSITORY@sha256:...}``: the newest agent image pushed for each."""
    return dict(client.request("GET", "/agent-images").json()["images"])
