"""Local files written so that a reader never sees half of one, and which storage URLs outlive the process."""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def write_text_atomic(path: Path, text: str, mode: int = 0o644) -> Path:
    """Write `text` to a temporary file next to `path`, then rename it into place.

    Raises:
        OSError: the folder cannot be created or written; nothing is left behind.
    """
    return write_bytes_atomic(path, text.encode("utf-8"), mode)


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o644) -> Path:
    """Write `data` to a temporary file next to `path`, then rename it into place.

    A symbolic link at `path` is replaced by the file, never written through: the file it pointed at is untouched.

    Raises:
        OSError: the folder cannot be created or written; nothing is left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def redact_url(url: str) -> str:
    """`url` with the password (or a lone token) of its user part replaced by '***', for messages and logs.

    `https://user:pw@host/x` → `https://user:***@host/x`; `https://token@host` → `https://***@host`; each link of
    a chained fsspec URL (`simplecache::sftp://...`) likewise.
    """
    if "::" in url:
        return "::".join(redact_url(link) for link in url.split("::"))
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<a URL that cannot be parsed>"
    if "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user, has_password, _ = userinfo.partition(":")
    hidden = f"{user}:***" if has_password else "***"
    return urlunsplit(parts._replace(netloc=f"{hidden}@{host}"))


def overwrite_problem(path: Path, option: str, *, signature: str, what: str) -> str | None:
    """Why a command must not write its output file to `path`, or None when it may.

    The toolkit overwrites only what it wrote: `path` may be new, an empty file, or a file whose first 256 bytes
    hold `signature` (the mark every file of that kind starts with). A folder is left to the write, which names it;
    a symbolic link is refused (the file it points at may be anyone's).

    Args:
        option: the command-line option that chose the path, named with the fix.
        what: what the command writes, for the message, e.g. "a file `dbt2prefect emit` wrote".
    """
    path = Path(path)
    if path.is_symlink():
        return f"{option} {path} is a symbolic link; pass the path of a regular file (or a new one)"
    if not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            head = handle.read(256)
    except OSError as exc:
        return f"{option} {path} cannot be read ({exc.strerror or exc}); pass another {option}"
    if not head or signature.encode() in head:
        return None
    return (
        f"{option} {path} exists and is not {what} (it lacks {signature!r}); dbt2prefect overwrites only files it "
        f"wrote: pass another {option}, or move that file away first"
    )


DURABLE_PROTOCOLS = frozenset(
    {"file", "local", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "hdfs", "webhdfs", "sftp", "ssh", "smb"}
)
"""fsspec protocols whose writes survive the process (`memory://` and the caching wrappers do not)."""


def durable_url_problem(url: str) -> str | None:
    """Why data written under `url` would not survive the process, or None when it would.

    A plain path is a local folder. Chained URLs (`simplecache::s3://...`) are checked link by link.
    """
    *wrappers, last = url.split("::")
    for link in [*wrappers, last]:
        # In a chain, every link but the last may be a bare protocol name (`simplecache::s3://...`).
        protocol = link.split("://", 1)[0].lower() if "://" in link or link in wrappers else "file"
        if protocol not in DURABLE_PROTOCOLS:
            return (
                f"{redact_url(url)!r} uses {protocol}://, which does not keep what is written once the process ends; use a "
                f"folder or one of {', '.join(f'{p}://' for p in sorted(DURABLE_PROTOCOLS))}"
            )
    return None


_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


def segment_problem(value: str) -> str | None:
    """Why `value` (a tenant name, a run id, a target) cannot be one folder name in a path, or None if it can.

    Letters, digits, '-', '_' and '.' only, starting with a letter or digit: no '/', no '..', no hidden names.
    """
    if _SEGMENT.fullmatch(value) and ".." not in value:
        return None
    return f"{value!r} cannot be a folder name: use letters, digits, '-', '_' and '.' (no '/', no '..')"


def store_filesystem(url: str) -> tuple[Any, str]:
    """The fsspec file system and path of a store's URL (artifact store, ledger), with no cached directory listings.

    Another process (a worker's flow run, another operator) changes the store between two reads: a listing cached by
    this process's file system instance (fsspec shares one per URL's settings) would hide what it wrote.

    Raises:
        ValueError, ImportError: the URL is not usable (no such protocol, its package is not installed).
    """
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, use_listings_cache=False)
    return fs, path


def writable_problem(url: str) -> str | None:
    """Why files cannot be written under the folder or fsspec URL `url`, or None when they can.

    Creates the folder if needed, then writes and removes one empty probe file.
    """
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
        fs.makedirs(root, exist_ok=True)
        probe = f"{root.rstrip('/')}/.dbt2prefect-probe-{uuid.uuid4().hex}"
        fs.pipe_file(probe, b"")
        fs.rm(probe)
    except (OSError, ValueError, ImportError) as exc:
        return f"cannot write under {url}: {type(exc).__name__}: {exc}"
    return None
