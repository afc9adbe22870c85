"""Object storage shared by processes that share nothing else: fresh reads, create-only writes, compare-and-swap.

The artifact store, the cutover ledger and parity's `latest.json` live under fsspec URLs: a local folder on a
laptop, object storage (S3, GCS, ADLS) in production, where the operator, the worker's throw-away container and CI
each reach the same bucket. Three things make that safe:

- `open_url`: a file system that never answers from a cached listing (s3fs keeps one per instance, so a process
  would not see a record another process wrote after its first listing).
- `create_new`: write an object only if its name is free (a ledger record is never overwritten). Local folders
  link a fully written temporary file into place; object stores send a conditional create (S3 `If-None-Match: *`).
- `versioned_file`: one small file replaced only when unchanged since it was read (compare-and-swap). Two ways:
  `conditional` (S3 `PutObject` with `If-Match: <ETag>` or `If-None-Match: *`; AWS S3 has both since 2024) and
  `lock` (a lock object created with a conditional create, broken once older than its expiry) for S3-compatible
  stores without `If-Match`. A local folder always uses a lock file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import fsspec

from dbt2prefect.errors import ArtifactStoreError

SwapMode = Literal["conditional", "lock"]
SWAP_MODES: tuple[SwapMode, ...] = ("conditional", "lock")

LOCK_EXPIRY_SECONDS = 30.0
"""A lock older than this is a crashed writer's and is broken (a swap holds it for milliseconds)."""
LOCK_WAIT_SECONDS = 10.0

_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
"""S3 answers a failed condition with 412 PreconditionFailed, and two conditional writes racing with 409."""


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return tuple(protocol) if isinstance(protocol, (tuple, list)) else (str(protocol),)


def is_local(fs: Any) -> bool:
    """Whether `fs` is the local file system."""
    return bool({"file", "local"} & set(_protocols(fs)))


def is_s3(fs: Any) -> bool:
    return bool({"s3", "s3a"} & set(_protocols(fs)))


def is_local_url(url: str) -> bool:
    """Whether `url` names a folder on this machine (a plain path, `file://` or `local://`)."""
    if "://" not in url:
        return True
    return url.split("::")[-1].split("://", 1)[0].lower() in ("file", "local")


def open_url(url: str) -> tuple[Any, str]:
    """The file system and root path of `url`, listing the store afresh on every call.

    Raises:
        ValueError, ImportError: the URL is not usable (fsspec's own errors; callers name the setting).
    """
    options: dict[str, Any] = {}
    if not is_local_url(url):
        # A cached listing would hide what another process wrote since (a ledger record, a pointer).
        options["use_listings_cache"] = False
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and url.split("::")[-1].split("://", 1)[0].lower() in ("s3", "s3a"):
        # fsspec reuses one file system per set of options, whatever the environment says now: naming the endpoint
        # keeps a process that moves to another S3 endpoint (the sandbox started again) off the old one.
        options["endpoint_url"] = endpoint
    fs, root = fsspec.core.url_to_fs(url, **options)
    return fs, str(root)


def _conflict(exc: BaseException) -> bool:
    """Whether an object store refused a write because its condition failed (another writer got there first)."""
    if isinstance(exc, FileExistsError):
        return True
    cause = exc.__cause__ or exc.__context__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return str(error.get("Code")) in _CONFLICT_CODES or str(status) in _CONFLICT_CODES
    return "pre-conditions you specified did not hold" in str(exc)


def create_new(fs: Any, path: str, data: bytes) -> None:
    """Write `path` whole, only if no object has that name yet.

    Raises:
        FileExistsError: the name is taken (nothing was written).
        OSError: the write failed.
    """
    if is_local(fs):
        _create_new_local(Path(path), data)
        return
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    try:
        fs.pipe_file(path, data, mode="create")
    except OSError as exc:
        if _conflict(exc):
            raise FileExistsError(path) from None
        raise


def _create_new_local(path: Path, data: bytes) -> None:
    """Write `path` durably, failing with FileExistsError if the name is taken; readers never see half a file."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        # link() refuses an existing target, unlike rename(): an older entry is never overwritten.
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True)
class Versioned:
    """A file's content (None when absent) and its version tag (None when absent)."""

    data: bytes | None
    version: str | None


class VersionedFile(Protocol):
    """One small file replaced only when unchanged since it was read (compare-and-swap)."""

    def read(self) -> Versioned: ...

    def replace(self, data: bytes, expected: str | None) -> bool:
        """Write `data` if the file's version is still `expected` (None: the file must not exist yet).

        Returns:
            False, writing nothing, when another writer changed the file since.
        """
        ...


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Lock:
    """A lock beside the file, taken by a create-only write and broken once older than `expiry`."""

    def __init__(self, fs: Any, path: str, expiry: float, wait: float) -> None:
        self.fs, self.path, self.expiry, self.wait = fs, f"{path}.lock", expiry, wait

    def _age(self) -> float | None:
        try:
            stamp = json.loads(self.fs.cat_file(self.path))["at"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return self.expiry + 1  # unreadable: a writer died mid-write
        return time.time() - float(stamp)

    def __enter__(self) -> _Lock:
        deadline = time.monotonic() + self.wait
        body = json.dumps({"at": time.time(), "pid": os.getpid(), "id": uuid.uuid4().hex}).encode()
        while True:
            try:
                create_new(self.fs, self.path, body)
                return self
            except FileExistsError:
                age = self._age()
                if age is not None and age > self.expiry:
                    self.fs.rm_file(self.path)  # left by a writer that died holding it
                    continue
                if time.monotonic() > deadline:
                    raise ArtifactStoreError(
                        f"the lock {self.path} has been held for more than {self.wait:.0f} s by another writer; "
                        f"rerun, or delete it if nothing is writing (it expires after {self.expiry:.0f} s)"
                    ) from None
                time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path)


class LockedFile:
    """`VersionedFile` under a lock object: the version is the content's digest, checked while holding the lock."""

    def __init__(
        self, fs: Any, path: str, expiry: float = LOCK_EXPIRY_SECONDS, wait: float = LOCK_WAIT_SECONDS
    ) -> None:
        self.fs, self.path, self.expiry, self.wait = fs, path, expiry, wait

    def read(self) -> Versioned:
        try:
            data = bytes(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return Versioned(None, None)
        return Versioned(data, _digest(data))

    def replace(self, data: bytes, expected: str | None) -> bool:
        parent = self.path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        with _Lock(self.fs, self.path, self.expiry, self.wait):
            if self.read().version != expected:
                return False
            if is_local(self.fs):
                from dbt2prefect.files import write_bytes_atomic

                write_bytes_atomic(Path(self.path), data)
            else:
                self.fs.pipe_file(self.path, data)
            return True


class ConditionalFile:
    """`VersionedFile` on S3: the version is the object's ETag; writes carry `If-Match` or `If-None-Match: *`."""

    def __init__(self, fs: Any, path: str) -> None:
        self.fs, self.path = fs, path

    def _etag(self) -> str | None:
        try:
            return str(self.fs.info(self.path, refresh=True)["ETag"])
        except FileNotFoundError:
            return None

    def read(self) -> Versioned:
        while True:
            before = self._etag()
            if before is None:
                return Versioned(None, None)
            try:
                data = bytes(self.fs.cat_file(self.path))
            except FileNotFoundError:
                continue
            # The content belongs to the tag only if nobody replaced the object between the two requests.
            if self._etag() == before:
                return Versioned(data, before)

    def replace(self, data: bytes, expected: str | None) -> bool:
        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        try:
            self.fs.pipe_file(self.path, data, **condition)
        except OSError as exc:
            if _conflict(exc):
                return False
            raise
        return True


def versioned_file(fs: Any, path: str, mode: SwapMode = "conditional") -> VersionedFile:
    """The compare-and-swap file at `path`: a lock file on a local folder, else by `mode` (see the module)."""
    if is_local(fs) or mode == "lock" or not is_s3(fs):
        return LockedFile(fs, path)
    return ConditionalFile(fs, path)
