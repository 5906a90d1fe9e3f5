"""The object store (MinIO, or any S3) that holds the platform's backups."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from drdrill.core.ownership import UNRESTRICTED, Verb, Write, WritePolicy
from drdrill.errors import ServiceError

log = logging.getLogger(__name__)

# Transfers raise boto3's own S3UploadFailedError, which is neither of botocore's.
_S3_ERRORS = (ClientError, BotoCoreError, Boto3Error)


def probe_minio(endpoint: str, timeout_s: float = 2) -> tuple[bool, str]:
    """MinIO's unauthenticated readiness endpoint: (ready, what was seen)."""
    try:
        with urllib.request.urlopen(f"{endpoint}/minio/health/ready", timeout=timeout_s) as response:  # noqa: S310
            return response.status == 200, f"health/ready HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"health/ready HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{endpoint} not answering ({getattr(exc, 'reason', exc)})"


class TransferMeter:
    """boto3's transfer callback, turned into a progress line at a steady pace (not per chunk)."""

    interval_s = 5.0

    def __init__(self, what: str, total: int | None, progress: Callable[[str], None] | None) -> None:
        self.what, self.total, self.progress = what, total, progress
        self.done = 0
        self._lock = threading.Lock()  # boto3 calls back from its transfer threads
        self._started = self._last = time.monotonic()

    def __call__(self, amount: int) -> None:
        if self.progress is None:
            return
        with self._lock:
            self.done += amount
            now = time.monotonic()
            if now - self._last < self.interval_s:
                return
            self._last = now
        of = f"/{self.total / 2**20:.1f}" if self.total else ""
        self.progress(f"{self.what}: {self.done / 2**20:.1f}{of} MiB ({now - self._started:.0f}s)")


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime
    etag: str


# One boto3 session for every store: a drill with 1,000 tenants holds a client per tenant, and
# clients of one session share the loaded service model (measured here: a session per client
# cost 113 ms and 12.4 MB each, a client of the shared session 5 ms and 0.9 MB).
_SESSION_LOCK = threading.Lock()
_SESSION: list[boto3.session.Session] = []


def _session() -> boto3.session.Session:
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    return _SESSION[0]


# Objects up to this size go in one request (most of an Elasticsearch repository's blobs).
SMALL_OBJECT_BYTES = 8 * 2**20


class ObjectStore:
    """A bucket on an S3 endpoint. Creating one does no I/O; the client is made on first use."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, *,
                 connect_timeout_s: float = 5, read_timeout_s: float = 60, max_attempts: int = 3,
                 guard: WritePolicy = UNRESTRICTED) -> None:
        self.endpoint, self.bucket = endpoint, bucket
        # Asked before every operation that would change the store (drdrill.core.ownership).
        self.guard = guard
        self._access_key, self._secret_key = access_key, secret_key
        self._read_timeout_s = read_timeout_s
        self._config = Config(
            connect_timeout=connect_timeout_s, read_timeout=read_timeout_s,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            s3={"addressing_style": "path"}, signature_version="s3v4",
            # Repositories are copied object by object from several threads at once.
            max_pool_connections=32,
        )
        self._client = None

    def __repr__(self) -> str:  # never show the keys
        return f"ObjectStore({self.endpoint!r}, bucket={self.bucket!r})"

    @property
    def client(self):
        if self._client is None:
            with _SESSION_LOCK:  # creating clients from one session is not thread-safe
                self._client = _session().client(
                    "s3", endpoint_url=self.endpoint, aws_access_key_id=self._access_key,
                    aws_secret_access_key=self._secret_key, region_name="us-east-1", config=self._config,
                )
                # Every operation, the transfer manager's included, is judged before it is built.
                self._client.meta.events.register("before-parameter-build.s3", self._judge)
        return self._client

    def _judge(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        for write in s3_writes(model.name, params):
            self.guard.check(write)

    def _fail(self, action: str, exc: Exception) -> ServiceError:
        if isinstance(exc, EndpointConnectionError):
            return ServiceError(f"object store {self.endpoint} unreachable while trying to {action}",
                                hint="is MinIO running and reachable from here?")
        return ServiceError(f"object store: {action} failed: {exc}")

    def probe(self, timeout_s: float = 3) -> tuple[bool, str]:
        return probe_minio(self.endpoint, timeout_s)

    def can_list(self) -> tuple[bool, str]:
        """Can these credentials list the bucket? (the restore needs exactly that)"""
        try:
            next(iter(self.list("metadata/")), None)
            return True, "ok"
        except ServiceError as exc:
            return False, exc.message

    def allowed(self, action: str, key: str) -> bool:
        """Whether these credentials may ``list`` (a prefix), ``get`` or ``put`` (a key): False
        on AccessDenied; any other failure is not an answer, and raises."""
        try:
            if action == "list":
                self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
            elif action == "get":
                self.client.get_object(Bucket=self.bucket, Key=key)["Body"].close()
            elif action == "put":
                self.client.put_object(Bucket=self.bucket, Key=key, Body=b"drdrill isolation probe\n")
            else:
                raise ValueError(f"unknown action {action!r}")
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "AccessDenied":
                return False
            raise self._fail(f"{action} {key}", exc) from exc
        except (BotoCoreError, Boto3Error) as exc:
            raise self._fail(f"{action} {key}", exc) from exc

    def with_credentials(self, access_key: str, secret_key: str) -> ObjectStore:
        """The same bucket, seen with other credentials (a tenant's own)."""
        return ObjectStore(self.endpoint, access_key, secret_key, self.bucket, read_timeout_s=self._read_timeout_s,
                           guard=self.guard)

    def for_bucket(self, bucket: str, guard: WritePolicy) -> ObjectStore:
        """Another bucket on the same endpoint with the same credentials, judged by ``guard``
        (the evidence store: a bucket of drdrill's own beside the backups)."""
        return ObjectStore(self.endpoint, self._access_key, self._secret_key, bucket,
                           read_timeout_s=self._read_timeout_s, guard=guard)

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise self._fail(f"check bucket {self.bucket}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"check bucket {self.bucket}", exc) from exc
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except _S3_ERRORS as exc:
            raise self._fail(f"create bucket {self.bucket}", exc) from exc

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"], int(item["Size"]), item["LastModified"],
                                     str(item.get("ETag", "")).strip('"'))
        except _S3_ERRORS as exc:
            raise self._fail(f"list {prefix or '/'}", exc) from exc

    def put_bytes(self, key: str, data: bytes, *, tags: dict[str, str] | None = None) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=dict(tags or {}))
        except _S3_ERRORS as exc:
            raise self._fail(f"put {key}", exc) from exc

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except _S3_ERRORS as exc:
            raise self._fail(f"get {key}", exc) from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._fail(f"head {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"head {key}", exc) from exc

    def tags(self, key: str) -> dict[str, str]:
        """The object's user metadata (``x-amz-meta-*``), e.g. drdrill's ``created-by`` tag."""
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key).get("Metadata") or {})
        except _S3_ERRORS as exc:
            raise self._fail(f"head {key}", exc) from exc

    def upload_file(self, path: Path, key: str, *, tags: dict[str, str] | None = None,
                    progress: Callable[[str], None] | None = None) -> None:
        size = path.stat().st_size
        meter = TransferMeter(f"upload {key}", size, progress)
        try:
            if size <= SMALL_OBJECT_BYTES:  # one PUT: the transfer manager's threads cost more than it
                with open(path, "rb") as body:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=dict(tags or {}))
                meter(size)
            else:
                self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"Metadata": dict(tags or {})},
                                        Callback=meter)
        except _S3_ERRORS as exc:
            raise self._fail(f"upload {key}", exc) from exc

    def download_file(self, key: str, path: Path, *, size: int | None = None,
                      progress: Callable[[str], None] | None = None) -> None:
        meter = TransferMeter(f"download {key}", size, progress)
        try:
            if size is not None and size <= SMALL_OBJECT_BYTES:  # one GET, no HEAD, no thread pool
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
                with open(path, "wb") as out:
                    while chunk := body.read(1 << 20):
                        out.write(chunk)
                        meter(len(chunk))
            else:
                self.client.download_file(self.bucket, key, str(path), Callback=meter)
        except _S3_ERRORS as exc:
            raise self._fail(f"download {key}", exc) from exc

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            try:
                response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except _S3_ERRORS as exc:
                raise self._fail("delete objects", exc) from exc
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise ServiceError(f"object store refused to delete {len(errors)} object(s), e.g. "
                                   f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}")


_S3_READS = frozenset({"ListObjectsV2", "ListObjects", "GetObject", "HeadObject", "HeadBucket", "GetObjectTagging",
                       "ListBuckets", "GetBucketLocation", "GetObjectAttributes", "ListMultipartUploads",
                       "GetBucketVersioning", "ListObjectVersions", "ListParts"})


def s3_writes(operation: str, params: dict[str, Any]) -> list[Write]:
    """What an S3 operation would change ([] for a read): the objects it names, or the bucket."""
    if operation in _S3_READS:
        return []
    bucket = str(params.get("Bucket") or "")
    if operation == "DeleteObjects":
        keys = [str(o.get("Key")) for o in (params.get("Delete") or {}).get("Objects", [])]
        return [Write("s3", "object", k, "delete", operation, bucket) for k in keys]
    verb: Verb = "delete" if operation.startswith("Delete") else "write"
    if params.get("Key") is not None:
        return [Write("s3", "object", str(params["Key"]), verb, operation, bucket)]
    return [Write("s3", "request", bucket, verb, operation, bucket)]


# --- per-tenant users (MinIO's admin API) ---------------------------------------------------


def prefix_policy(bucket: str, prefixes: list[str]) -> dict[str, Any]:
    """An IAM policy that reaches ``prefixes`` of ``bucket`` (list, read, write, delete) and
    nothing else: not the bucket's root listing, not another tenant's path, not metadata/."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"],
         "Condition": {"StringLike": {"s3:prefix": [p + "*" for p in prefixes]}}},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": [f"arn:aws:s3:::{bucket}/{p}*" for p in prefixes]},
    ]}


class StoreAdmin:
    """MinIO's admin API with the root credentials: users and policies. No I/O until used."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str) -> None:
        self.endpoint = endpoint
        self._access_key, self._secret_key = access_key, secret_key

    def __repr__(self) -> str:
        return f"StoreAdmin({self.endpoint!r})"

    def _admin(self) -> Any:
        from minio.credentials import StaticProvider
        from minio.minioadmin import MinioAdmin

        secure = self.endpoint.startswith("https://")
        return MinioAdmin(endpoint=self.endpoint.split("://", 1)[-1], secure=secure,
                          credentials=StaticProvider(self._access_key, self._secret_key))

    def _do(self, action: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as exc:  # minio-py raises several types; every one is a failed admin call
            raise ServiceError(f"MinIO admin: {action} failed: {type(exc).__name__}: {exc}") from exc

    def grant_prefixes(self, user: str, secret: str, bucket: str, prefixes: list[str]) -> None:
        """Create (or reset) ``user`` with a policy of its own reaching only ``prefixes``."""
        admin = self._admin()
        policy = f"{user}-paths"
        self._do(f"add user {user}", lambda: admin.user_add(user, secret))
        self._do(f"add policy {policy}", lambda: admin.policy_add(policy, policy=prefix_policy(bucket, prefixes)))
        self._do(f"attach {policy} to {user}", lambda: admin.policy_set(policy, user=user))

    def remove_user(self, user: str) -> None:
        admin = self._admin()
        self._do(f"remove user {user}", lambda: admin.user_remove(user))
        self._do(f"remove policy {user}-paths", lambda: admin.policy_remove(f"{user}-paths"))
