"""Content-addressed artifacts in an S3 bucket: ``s3://BUCKET/PREFIX/sha256/ab/abcdef...``.

The same contract as the folder store (:class:`amlpkg.store.artifacts.Artifacts`):

- A write stages the bytes in a local file while hashing them, uploads that file
  to a temporary key (boto3's managed transfer: multipart above 8 MiB, straight
  from the client to the bucket), reads the uploaded object back through sha256,
  and only when it matches copies it (server side) under its digest key. So an
  object under a digest key always has that digest, and a writer killed at any
  moment leaves at most an unfinished multipart upload or a ``tmp/`` object,
  never a partial artifact. The read-back doubles the transfer of a write; it is
  what makes the check end to end rather than trusting the transport.
- A read downloads into a local cache (temporary file, hashed, renamed) and
  checks the digest; cached copies are checked again on every read, like the
  folder store's files.

Credentials come from boto3's usual chain (environment, config files, instance
roles) and never appear in our messages.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

from amlpkg.errors import AmlpkgError, IntegrityError, InvalidArgumentError, UnavailableError
from amlpkg.store.artifacts import _CHUNK, _DIGEST, ArtifactStore, Staged, sha256_file

MULTIPART_THRESHOLD = 8 * 1024 * 1024


@lru_cache(maxsize=8)
def _client(endpoint_url: str | None, pid: int) -> Any:
    """One client per endpoint and process (clients are thread-safe, not fork-safe)."""
    import boto3
    from botocore.config import Config

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        # S3-compatible servers on an address (not a DNS name) need path-style URLs.
        s3={"addressing_style": "path" if endpoint_url else "auto"},
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config
    )


_REFUSED = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoCredentialsError")


def _s3_error(err: Exception, what: str) -> AmlpkgError:
    """Our error for a botocore failure: the S3 error code, never a credential."""
    code = getattr(err, "response", {}).get("Error", {}).get("Code") or type(err).__name__
    if code in ("NoSuchBucket",):
        return InvalidArgumentError(f"{what}: the bucket does not exist", hint="create it first")
    if code in _REFUSED:
        return UnavailableError(
            f"{what}: access refused by the object store ({code})",
            hint="check the S3 credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)",
        )
    return UnavailableError(
        f"{what}: the object store failed ({code})",
        hint="check that the S3 endpoint (AMLPKG_S3_ENDPOINT_URL or AWS_ENDPOINT_URL) is up",
    )


def _not_found(err: Exception) -> bool:
    code = getattr(err, "response", {}).get("Error", {}).get("Code")
    return code in ("404", "NoSuchKey", "NotFound")


class S3ArtifactStore:
    """Blobs keyed by sha256 in ``bucket`` under ``prefix``, with a verified local cache."""

    def __init__(
        self, client: Any, bucket: str, prefix: str, cache: Path, *, signer: Any = None
    ) -> None:
        self.client = client
        # Signs the URLs handed to clients: a client on the public endpoint, when the
        # server reaches the bucket at an address its clients cannot (inside a cluster).
        self.signer = client if signer is None else signer
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.cache = ArtifactStore(cache)
        self.url = f"s3://{bucket}/{self.prefix}"

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cache: Path,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
    ) -> S3ArtifactStore:
        """The store ``s3://BUCKET/PREFIX`` names; checks the bucket answers.

        ``public_endpoint_url``: where clients reach the bucket, used only to sign the
        URLs handed to them (direct uploads); unset, ``endpoint_url``.
        """
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise InvalidArgumentError(f"not an S3 URL: {url!r}", hint="use s3://BUCKET/PREFIX")
        from botocore.exceptions import BotoCoreError, ClientError

        signer = None
        if public_endpoint_url:
            try:
                signer = _client(public_endpoint_url, os.getpid())
            except ValueError:
                raise InvalidArgumentError(
                    f"the public S3 endpoint {public_endpoint_url!r} is not a URL",
                    hint="set AMLPKG_S3_PUBLIC_ENDPOINT_URL to http(s)://HOST[:PORT]",
                ) from None
        try:
            client = _client(endpoint_url, os.getpid())
            client.head_bucket(Bucket=parsed.netloc)
        except (BotoCoreError, ClientError) as err:
            if _not_found(err):
                raise InvalidArgumentError(
                    f"the bucket {parsed.netloc!r} does not exist", hint="create it first"
                ) from err
            raise _s3_error(err, f"cannot open the artifact store {url}") from err
        return cls(client, parsed.netloc, parsed.path, cache, signer=signer)

    def key_for(self, digest: str) -> str:
        """The object key of the blob with ``digest``."""
        if not _DIGEST.match(digest):
            raise InvalidArgumentError(f"not a sha256 hex digest: {digest!r}")
        return f"{self.prefix}sha256/{digest[:2]}/{digest}"

    def put_file(self, source: Path) -> tuple[str, int]:
        """Store a copy of ``source``; return ``(sha256, size)``."""
        with self.staged_file(source) as staged:
            return staged.sha256, staged.size

    @contextmanager
    def staged_file(self, source: Path) -> Iterator[Staged]:
        """A local copy of ``source`` to check; uploaded when the block exits normally."""
        with self.cache.staged_file(source) as staged:
            yield staged
            self._upload(staged)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data``; return ``(sha256, size)``."""
        return self.put_stream(io.BytesIO(data))

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store what ``stream`` yields until EOF; return ``(sha256, size)``."""
        staged = self.cache._stage(stream)
        try:
            self._upload(staged)
            self.cache._commit(staged)
        finally:
            staged.path.unlink(missing_ok=True)
        return staged.sha256, staged.size

    def _upload(self, staged: Staged) -> None:
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        final = self.key_for(staged.sha256)
        if self.exists(staged.sha256):
            return  # deduplicated: an object under a digest key was checked when written
        temp = f"{self.prefix}tmp/{uuid.uuid4().hex}"
        what = f"uploading artifact {staged.sha256} to {self.url}"
        try:
            self.client.upload_file(
                str(staged.path),
                self.bucket,
                temp,
                ExtraArgs={"Metadata": {"sha256": staged.sha256}},
                Config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD),
            )
            try:
                actual, size = self._hash_object(temp)
                if (actual, size) != (staged.sha256, staged.size):
                    raise IntegrityError(
                        f"{what}: the bucket holds {size} bytes with sha256 {actual}",
                        hint="the object store or the network corrupted the upload; retry",
                    )
                self.client.copy({"Bucket": self.bucket, "Key": temp}, self.bucket, final)
            finally:
                self.client.delete_object(Bucket=self.bucket, Key=temp)
        except (BotoCoreError, ClientError) as err:
            raise _s3_error(err, what) from err

    def _hash_object(self, key: str) -> tuple[str, int]:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        digest = hashlib.sha256()
        size = 0
        for chunk in body.iter_chunks(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size

    def exists(self, digest: str) -> bool:
        """Whether a blob with ``digest`` is stored."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key_for(digest))
        except ClientError as err:
            if _not_found(err):
                return False
            raise _s3_error(err, f"looking up artifact {digest} in {self.url}") from err
        except BotoCoreError as err:
            raise _s3_error(err, f"looking up artifact {digest} in {self.url}") from err
        return True

    def verified_path(self, digest: str) -> Path:
        """A local, verified copy of the blob (downloaded into the cache when needed)."""
        path = self.cache.path_for(digest)
        if path.is_file() and sha256_file(path)[0] == digest:
            return path
        self._download(digest)
        return self.cache.verified_path(digest)

    def _download(self, digest: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        from amlpkg.errors import NotFoundError

        what = f"reading artifact {digest} from {self.url}"
        folder = self.cache.root / "sha256"
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                self.client.download_fileobj(self.bucket, self.key_for(digest), out)
            staged = Staged(Path(name), *sha256_file(Path(name)))
            if staged.sha256 != digest:
                raise IntegrityError(
                    f"{what}: its content has sha256 {staged.sha256}",
                    hint="the object was changed in the bucket; restore it or register again",
                )
            self.cache._commit(staged)
        except ClientError as err:
            if _not_found(err):
                raise NotFoundError(
                    f"artifact {digest} is missing from {self.url}",
                    hint="the bucket was edited by hand or is incomplete",
                ) from err
            raise _s3_error(err, what) from err
        except BotoCoreError as err:
            raise _s3_error(err, what) from err
        finally:
            Path(name).unlink(missing_ok=True)

    def read_bytes(self, digest: str) -> bytes:
        """The verified content of the blob with ``digest``."""
        return self.verified_path(digest).read_bytes()

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest (temporary uploads are not artifacts)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}sha256/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if _DIGEST.match(name):
                    yield name

    def remove_stale_temp_files(self) -> int:
        """Delete temporary uploads and abort unfinished multipart uploads left by killed writers.

        Only call this when no other process is writing to the store.
        """
        removed = 0
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}tmp/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                removed += 1
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        for upload in uploads.get("Uploads", []):
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
            removed += 1
        return removed + self.cache.remove_stale_temp_files()
