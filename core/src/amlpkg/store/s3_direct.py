"""Uploads that go from the client straight to the bucket, checked before they count.

The server never carries the bytes: :func:`start` answers presigned URLs for a
temporary key (one PUT, or the parts of a multipart upload for a large file), the
client sends the file there, and :func:`finish` checks what the bucket holds before
the blob is stored under its digest. The URLs are signed for the store's public
endpoint (``AMLPKG_S3_PUBLIC_ENDPOINT_URL``) when the server's own is internal.
Checks:

- the size (HEAD) must be the one announced;
- the sha256 must be the one announced: a single PUT is signed with its
  ``x-amz-checksum-sha256``, so the bucket refuses other bytes and reports the
  checksum it verified; when it reports none (a multipart upload, or a store that
  does not keep checksums), the object is read back once through sha256.

A mismatch deletes the temporary object and raises :class:`InvalidArgumentError`
(the client's upload is wrong, not the store); an
upload never finished (the client died) leaves only a temporary object or an
unfinished multipart upload, which :meth:`S3ArtifactStore.remove_stale_temp_files`
deletes. Either way no blob appears under a digest key, so nothing can record it.
"""

from __future__ import annotations

import base64
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.store.s3 import S3ArtifactStore, _not_found, _s3_error

PART_BYTES = 64 * 1024 * 1024
"""Files above this size go as a multipart upload of parts this large (the last smaller)."""
MAX_PARTS = 10_000  # S3's limit
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest part but the last
MAX_BYTES = 5 * 1024**4  # S3's largest object
EXPIRES_S = 3600
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Grant:
    """Where the client sends the file: one URL per part (one part: a plain PUT)."""

    upload_id: str
    multipart_id: str | None
    part_bytes: int
    urls: list[str]
    headers: dict[str, str]  # to send with a single PUT (the signed checksum)
    expires_in: int


def part_bytes_for(size: int, part_bytes: int = PART_BYTES) -> int:
    """The part size for ``size`` bytes: :data:`PART_BYTES`, larger when it would need
    more than :data:`MAX_PARTS` parts."""
    return max(part_bytes, MIN_PART_BYTES, math.ceil(size / MAX_PARTS))


def _temp_key(store: S3ArtifactStore, upload_id: str) -> str:
    if not _UPLOAD_ID.match(upload_id):
        raise InvalidArgumentError(
            f"not an upload id: {upload_id[:40]!r}", hint="use the upload_id the server gave"
        )
    return f"{store.prefix}tmp/{upload_id}"


def start(store: S3ArtifactStore, sha256: str, size: int, *, part_bytes: int = PART_BYTES) -> Grant:
    """Presigned URLs for a new temporary object of ``size`` bytes with ``sha256``."""
    from botocore.exceptions import BotoCoreError, ClientError

    store.key_for(sha256)  # refuses a malformed digest
    if not 0 <= size <= MAX_BYTES:
        raise InvalidArgumentError(f"size {size} is out of range", hint=f"0 to {MAX_BYTES} bytes")
    upload_id = uuid.uuid4().hex
    key = _temp_key(store, upload_id)
    client, signer, bucket = store.client, store.signer, store.bucket
    try:
        if size <= part_bytes:
            checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
            params = {"Bucket": bucket, "Key": key, "ChecksumSHA256": checksum}
            url = signer.generate_presigned_url("put_object", Params=params, ExpiresIn=EXPIRES_S)
            headers = {"x-amz-checksum-sha256": checksum}
            return Grant(upload_id, None, max(size, 1), [url], headers, EXPIRES_S)
        part = part_bytes_for(size, part_bytes)
        multipart = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        urls = [
            signer.generate_presigned_url(
                "upload_part",
                Params={"Bucket": bucket, "Key": key, "UploadId": multipart, "PartNumber": n},
                ExpiresIn=EXPIRES_S,
            )
            for n in range(1, math.ceil(size / part) + 1)
        ]
    except (BotoCoreError, ClientError) as err:
        raise _s3_error(err, f"starting an upload to {store.url}") from err
    return Grant(upload_id, multipart, part, urls, {}, EXPIRES_S)


def finish(
    store: S3ArtifactStore,
    upload_id: str,
    sha256: str,
    size: int,
    *,
    multipart_id: str | None = None,
    etags: Sequence[str] = (),
) -> None:
    """Check the uploaded object and store it under ``sha256`` (see the module doc)."""
    from botocore.exceptions import BotoCoreError, ClientError

    key = _temp_key(store, upload_id)
    final = store.key_for(sha256)
    what = f"the upload {upload_id}"
    client, bucket = store.client, store.bucket
    try:
        if multipart_id is not None:
            _complete(store, key, multipart_id, etags, what)
        try:
            head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as err:
            if _not_found(err):
                raise FailedPreconditionError(
                    f"{what} holds no object",
                    hint="send the file to the URL(s) the server gave, then commit",
                ) from err
            raise
        try:
            _check(store, key, head, sha256, size, what=what)
            if not store.exists(sha256):
                store.client.copy({"Bucket": bucket, "Key": key}, bucket, final)
        finally:
            client.delete_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as err:
        raise _s3_error(err, f"finishing {what}") from err


_BAD_PARTS = ("InvalidPart", "InvalidPartOrder", "NoSuchUpload", "EntityTooSmall")


def _complete(
    store: S3ArtifactStore, key: str, multipart_id: str, etags: Sequence[str], what: str
) -> None:
    from botocore.exceptions import ClientError

    parts = [{"PartNumber": n, "ETag": tag} for n, tag in enumerate(etags, start=1)]
    try:
        store.client.complete_multipart_upload(
            Bucket=store.bucket, Key=key, UploadId=multipart_id, MultipartUpload={"Parts": parts}
        )
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code")
        if code in _BAD_PARTS:
            raise InvalidArgumentError(
                f"{what}: the bucket cannot join its parts ({code})",
                hint="send every part to the URLs given and commit their ETags in order",
            ) from err
        raise


def _check(
    store: S3ArtifactStore, key: str, head: dict[str, object], sha256: str, size: int, *, what: str
) -> None:
    found = int(str(head.get("ContentLength", -1)))
    if found != size:
        raise InvalidArgumentError(
            f"{what} holds {found} bytes, not the {size} announced",
            hint="upload the whole file again",
        )
    checksum = head.get("ChecksumSHA256")
    expected = base64.b64encode(bytes.fromhex(sha256)).decode()
    if checksum == expected:
        return  # the bucket verified these bytes against the signed checksum
    actual, _ = store._hash_object(key)
    if actual != sha256:
        raise InvalidArgumentError(
            f"{what} has sha256 {actual}, not the {sha256} announced",
            hint="the file changed or was corrupted on the way; upload it again",
        )


def abort(store: S3ArtifactStore, upload_id: str, multipart_id: str | None = None) -> None:
    """Drop an upload that will not be finished (its parts and its temporary object)."""
    from botocore.exceptions import BotoCoreError, ClientError

    key = _temp_key(store, upload_id)
    try:
        if multipart_id is not None:
            store.client.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=multipart_id)
        store.client.delete_object(Bucket=store.bucket, Key=key)
    except (BotoCoreError, ClientError) as err:
        raise _s3_error(err, f"aborting the upload {upload_id}") from err
