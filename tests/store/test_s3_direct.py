"""Direct uploads to the bucket (presigned URLs) on the real S3 server (SeaweedFS): a file
counts only once its size and sha256 check out; anything else leaves no blob behind."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.store import s3_direct
from amlpkg.store.s3 import S3ArtifactStore
from amlpkg.store.workspace import open_workspace
from tests.store.conftest import TeamStore

MIB = 1024 * 1024


@pytest.fixture
def bucket(team_store: TeamStore, tmp_path: Path) -> Iterator[S3ArtifactStore]:
    with open_workspace(tmp_path / "ws", artifacts=team_store.artifacts) as ws:
        assert isinstance(ws.artifacts, S3ArtifactStore)
        yield ws.artifacts


def _keys(store: S3ArtifactStore) -> list[str]:
    found = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
    return [item["Key"][len(store.prefix) :] for item in found.get("Contents", [])]


def _send(grant: s3_direct.Grant, data: bytes) -> list[str]:
    etags = []
    for n, url in enumerate(grant.urls):
        part = data[n * grant.part_bytes : (n + 1) * grant.part_bytes]
        answer = httpx.put(url, content=part, headers=grant.headers, timeout=60)
        assert answer.status_code == 200, answer.text
        etags.append(answer.headers["etag"])
    return etags


def test_a_single_put_is_checked_by_its_signed_checksum(bucket: S3ArtifactStore) -> None:
    data = os.urandom(300_000)
    digest = hashlib.sha256(data).hexdigest()
    grant = s3_direct.start(bucket, digest, len(data))
    assert grant.multipart_id is None and len(grant.urls) == 1
    # Other bytes under the same signed checksum: the bucket itself refuses them.
    refused = httpx.put(grant.urls[0], content=b"x" * len(data), headers=grant.headers)
    assert refused.status_code == 400 and "BadDigest" in refused.text
    with pytest.raises(FailedPreconditionError, match="holds no object"):
        s3_direct.finish(bucket, grant.upload_id, digest, len(data))
    _send(grant, data)
    s3_direct.finish(bucket, grant.upload_id, digest, len(data))
    assert bucket.read_bytes(digest) == data
    assert _keys(bucket) == [f"sha256/{digest[:2]}/{digest}"]  # the temporary object is gone


def test_multipart_parts_are_read_back_and_a_tampered_part_is_refused(
    bucket: S3ArtifactStore,
) -> None:
    data = os.urandom(11 * MIB)
    digest = hashlib.sha256(data).hexdigest()
    grant = s3_direct.start(bucket, digest, len(data), part_bytes=5 * MIB)
    assert grant.multipart_id is not None and len(grant.urls) == 3
    tampered = data[:-1] + bytes([data[-1] ^ 1])  # one bit of the last part
    etags = _send(grant, tampered)
    with pytest.raises(InvalidArgumentError, match=r"not the .* announced"):
        s3_direct.finish(
            bucket, grant.upload_id, digest, len(data),
            multipart_id=grant.multipart_id, etags=etags,
        )  # fmt: skip
    assert not bucket.exists(digest) and _keys(bucket) == []  # refused and cleaned up

    grant = s3_direct.start(bucket, digest, len(data), part_bytes=5 * MIB)
    etags = _send(grant, data)
    with pytest.raises(InvalidArgumentError, match="cannot join its parts"):
        s3_direct.finish(
            bucket, grant.upload_id, digest, len(data),
            multipart_id=grant.multipart_id, etags=['"0123"', *etags[1:]],
        )  # fmt: skip
    s3_direct.finish(
        bucket, grant.upload_id, digest, len(data), multipart_id=grant.multipart_id, etags=etags
    )
    assert bucket.read_bytes(digest) == data


def test_a_wrong_size_or_digest_is_refused(bucket: S3ArtifactStore) -> None:
    data, other = b"a" * 1000, b"b" * 1000
    grant = s3_direct.start(bucket, hashlib.sha256(data).hexdigest(), len(data))
    _send(grant, data)
    with pytest.raises(InvalidArgumentError, match="holds 1000 bytes, not the 999"):
        s3_direct.finish(bucket, grant.upload_id, hashlib.sha256(data).hexdigest(), 999)
    grant = s3_direct.start(bucket, hashlib.sha256(data).hexdigest(), len(data))
    _send(grant, data)
    with pytest.raises(InvalidArgumentError, match="has sha256"):  # a commit that lies
        s3_direct.finish(bucket, grant.upload_id, hashlib.sha256(other).hexdigest(), len(data))
    assert _keys(bucket) == []
    with pytest.raises(InvalidArgumentError, match="not an upload id"):
        s3_direct.finish(bucket, "../sha256/x", hashlib.sha256(data).hexdigest(), 1000)


def test_an_upload_never_finished_leaves_no_blob_and_is_cleaned_up(
    bucket: S3ArtifactStore,
) -> None:
    data = os.urandom(11 * MIB)
    digest = hashlib.sha256(data).hexdigest()
    single = s3_direct.start(bucket, hashlib.sha256(data[:1000]).hexdigest(), 1000)
    _send(single, data[:1000])
    parts = s3_direct.start(bucket, digest, len(data), part_bytes=5 * MIB)
    _send(parts, data)  # sent, never finished: the client died
    assert not bucket.exists(digest)
    assert bucket.remove_stale_temp_files() >= 2  # the temporary object and the multipart
    assert _keys(bucket) == []
