"""dbt packages of a run, installed in the run's private copy of the project, never in the team's own folder.

`dbt deps` first empties the project's packages-install-path (`dbt_packages/`): run in the team's folder, it would
delete what the team put there, and offline it fails. A run of a project with packages.yml (or dependencies.yml)
therefore works on a private copy: the project without its target, logs and installed packages, with `local:`
package paths made absolute so they still point where the team's file says. Packages are installed into that copy
from a cache keyed by the package files, so only the first run with a given set of packages needs the hub.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from dbt2prefect.errors import ConfigError, DbtRunError, ExternalServiceError

PACKAGE_FILES = ("packages.yml", "dependencies.yml")
LOCK_FILE = "package-lock.yml"
DEFAULT_HUB = "https://hub.getdbt.com/"
_ALWAYS_SKIPPED = (".git", ".venv", "__pycache__")


def has_packages(project_dir: Path) -> bool:
    """True when the project declares dbt packages."""
    return any((project_dir / name).is_file() for name in PACKAGE_FILES)


def dbt_executable() -> str:
    """The `dbt` beside this interpreter (the virtualenv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("dbt")
    if beside.exists():
        return str(beside)
    found = shutil.which("dbt")
    if found is None:
        raise FileNotFoundError("no dbt executable beside the Python interpreter or on PATH")
    return found


def project_config(project_dir: Path) -> dict[str, Any]:
    """The project's dbt_project.yml as a mapping (empty if it holds no mapping).

    Raises:
        ConfigError: it cannot be read as YAML.
    """
    path = project_dir / "dbt_project.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} cannot be read as YAML: {exc}") from None
    return data if isinstance(data, dict) else {}


def project_profile(project_dir: Path) -> str:
    """The profile name the project's dbt_project.yml asks for (`profile:`)."""
    name = project_config(project_dir).get("profile")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{project_dir / 'dbt_project.yml'} names no `profile:`; add the profile dbt should use")
    return name


def _generated_folders(project_dir: Path) -> set[str]:
    config = project_config(project_dir)
    names = {
        str(config.get("target-path") or "target"),
        str(config.get("log-path") or "logs"),
        str(config.get("packages-install-path") or "dbt_packages"),
    }
    return {name.strip("/").split("/", 1)[0] for name in names} | set(_ALWAYS_SKIPPED)


def _absolute_local_packages(text: str, source: Path) -> str:
    data = yaml.safe_load(text)
    packages = data.get("packages") if isinstance(data, dict) else None
    if not isinstance(packages, list):
        return text
    for package in packages:
        if isinstance(package, dict) and isinstance(package.get("local"), str):
            path = Path(package["local"]).expanduser()
            package["local"] = str(path if path.is_absolute() else (source / path).resolve())
    return yaml.safe_dump(data, sort_keys=False)


def private_copy(project_dir: Path, destination: Path) -> Path:
    """Copy the project to `destination` without generated folders; `local:` packages keep their targets.

    Returns:
        `destination`.
    """
    source = project_dir.resolve()
    skipped = _generated_folders(source)
    shutil.copytree(
        source,
        destination,
        symlinks=True,
        ignore=lambda folder, names: [n for n in names if Path(folder) == source and n in skipped],
    )
    for name in PACKAGE_FILES:
        file = destination / name
        if file.is_file():
            file.write_text(_absolute_local_packages(file.read_text(encoding="utf-8"), source), encoding="utf-8")
    # The lock file pins what the team's packages.yml resolved to; with rewritten local paths dbt resolves again.
    (destination / LOCK_FILE).unlink(missing_ok=True)
    return destination


def _cache_key(copy: Path) -> str:
    digest = hashlib.sha256()
    for name in (*PACKAGE_FILES, LOCK_FILE):
        file = copy / name
        digest.update(name.encode() + b"\0" + (file.read_bytes() if file.is_file() else b"") + b"\0")
    digest.update(os.environ.get("DBT_PACKAGE_HUB_URL", DEFAULT_HUB).encode())
    return digest.hexdigest()[:20]


def _declared(project: Path) -> list[dict[str, Any]]:
    for name in PACKAGE_FILES:
        file = project / name
        if file.is_file():
            try:
                data = yaml.safe_load(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                return []
            packages = data.get("packages") if isinstance(data, dict) else None
            return [p for p in packages if isinstance(p, dict)] if isinstance(packages, list) else []
    return []


def remote_packages(copy: Path) -> list[str]:
    """Every package `dbt deps` must fetch (hub, git, tarball), with the local package that asks for it.

    Local packages are followed: a vendored package's own packages.yml can still need the hub.
    """
    found: list[str] = []
    seen: set[Path] = set()
    queue: list[tuple[Path, str]] = [(copy, "the project's packages.yml")]
    while queue:
        project, asker = queue.pop(0)
        if project in seen:
            continue
        seen.add(project)
        for package in _declared(project):
            if isinstance(package.get("local"), str):
                local = Path(package["local"])
                local = local if local.is_absolute() else (project / local).resolve()
                queue.append((local, f"local package {local}"))
            elif "package" in package:
                version = package.get("version")
                found.append(f"hub package {package['package']} {version or ''}".rstrip() + f" (from {asker})")
            elif "git" in package:
                revision = f"@{package['revision']}" if package.get("revision") else ""
                found.append(f"git package {package['git']}{revision} (from {asker})")
            elif "tarball" in package:
                found.append(f"tarball package {package['tarball']} (from {asker})")
            elif "private" in package:
                found.append(f"private package {package['private']} (from {asker})")
    return found


def deps_failure(copy: Path, output: str, log: Path) -> DbtRunError | ExternalServiceError:
    """The error of a failed `dbt deps`: which package and why, and where its whole output is kept."""
    remote = remote_packages(copy)
    files = " / ".join(name for name in PACKAGE_FILES if (copy / name).is_file())
    hub = os.environ.get("DBT_PACKAGE_HUB_URL", DEFAULT_HUB)
    git = next((line for line in output.splitlines() if "for repo " in line), None)
    if git is not None:
        repository = git.split("for repo ", 1)[1].strip()
        reason = next((line.strip() for line in output.splitlines() if line.strip().startswith("fatal:")), "")
        return ExternalServiceError(
            f"dbt deps could not fetch git package {repository} ({reason or 'git failed'}); give this machine "
            "access to it (network, credentials), or vendor it as a `local:` package. dbt deps output: " + str(log)
        )
    if "External connection exception" in output or "Max retries exceeded" in output:
        needed = [r for r in remote if r.startswith("hub package")] or remote
        return ExternalServiceError(
            f"dbt deps could not reach the dbt package hub {hub} for {'; '.join(needed) or files}: connect this "
            "machine to it, set DBT_PACKAGE_HUB_URL to a private hub mirror, or vendor the packages as `local:` "
            f"packages; a later run with the same packages installs them from the cache. dbt deps output: {log}"
        )
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith(" " * 4)][-6:]
    asked = f" (it fetches {'; '.join(remote)})" if remote else ""
    return DbtRunError(f"dbt deps failed for {files}{asked}: " + " | ".join(lines) + f". dbt deps output: {log}")


def install_packages(copy: Path, cache_root: Path, timeout: float = 600.0) -> str:
    """Install the packages of a private copy: from the cache, else with `dbt deps` (then cached).

    Returns:
        "cache" or "dbt deps": where the packages came from.

    Raises:
        ExternalServiceError: the package hub or a git package could not be reached (exit 3).
        DbtRunError: `dbt deps` failed for another reason.
        Both name the packages and keep dbt deps' whole output in `<cache_root>/logs/`.
    """
    install = copy / str(project_config(copy).get("packages-install-path") or "dbt_packages")
    cached = cache_root / _cache_key(copy)
    if cached.is_dir():
        shutil.copytree(cached, install, symlinks=True, dirs_exist_ok=True)
        return "cache"
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_USE_COLORS": "false"}
    try:
        proc = subprocess.run(
            [dbt_executable(), "deps", "--project-dir", str(copy), "--log-path", str(copy / "logs")],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DbtRunError(
            f"dbt deps did not finish within {timeout:.0f} s for {copy}; it was installing "
            + ("; ".join(remote_packages(copy)) or "local packages only")
        ) from None
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        log = cache_root / "logs" / f"dbt-deps-{cached.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(output, encoding="utf-8")
        raise deps_failure(copy, output, log)
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".packages-", dir=cache_root))
    if install.is_dir():
        shutil.copytree(install, staging / "p", symlinks=True)
    else:
        (staging / "p").mkdir()
    with contextlib.suppress(OSError):  # a concurrent run cached the same packages first
        os.rename(staging / "p", cached)
    shutil.rmtree(staging, ignore_errors=True)
    return "dbt deps"


MAX_SLOTS = 64
"""Concurrent runs of one project each get a private copy of their own; more than this is a runaway."""


def prepared_project(project_dir: Path, destination: Path, cache_root: Path, *, copy: bool = False) -> Path:
    """The folder dbt should run in: `project_dir` itself without packages (unless `copy`), else a private copy at
    `destination` with its packages installed.

    Raises:
        ExternalServiceError, DbtRunError: see `install_packages`.
    """
    if not copy and not has_packages(project_dir):
        return project_dir
    shutil.rmtree(destination, ignore_errors=True)
    copied = private_copy(project_dir, destination)
    if has_packages(copied):
        install_packages(copied, cache_root)
    return copied


def project_key(project_dir: Path) -> str:
    """The same for every checkout of one project: a hash of its dbt name and its path inside the git repository
    that holds it (its absolute path outside a repository)."""
    source = project_dir.resolve()
    place = str(source)
    for parent in (source, *source.parents):
        if (parent / ".git").exists():
            place = source.relative_to(parent).as_posix()
            break
    name = project_config(source).get("name")
    return hashlib.sha256(f"{name}\0{place}".encode()).hexdigest()[:16]


@contextlib.contextmanager
def prepared_project_in_place(
    project_dir: Path, slots_root: Path, cache_root: Path, *, copy: bool = False
) -> Iterator[Path]:
    """`prepared_project` in a folder that stays the same from run to run, locked while the block lasts.

    The copy is made afresh for each run, in the first `slot-<n>` folder under `slots_root/<project_key>` that no
    other run of this project holds: dbt's saved parse names the project's absolute path, so a stable folder lets
    the next run parse only what changed (partial parsing), as for a project without packages run in place.
    Concurrent runs get different folders. With `copy`, a project without packages gets such a copy too: for a
    project folder that is a checkout made for one run (a deployment run's clone, in a new folder each time), so
    that the next run of the project in the same `slots_root` finds its saved parse.
    """
    if not copy and not has_packages(project_dir):
        yield project_dir
        return
    folder = slots_root / project_key(project_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with _free_slot(folder) as slot:
        yield prepared_project(project_dir, slot / "project", cache_root, copy=True)


@contextlib.contextmanager
def _free_slot(folder: Path) -> Iterator[Path]:
    """The first `slot-<n>` folder under `folder` whose lock no other process holds, locked until the block ends."""
    for number in range(MAX_SLOTS):
        lock_path = folder / f"slot-{number}.lock"
        handle = lock_path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield folder / f"slot-{number}"
            return
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
    raise DbtRunError(
        f"{MAX_SLOTS} runs of this project are using private copies under {folder} at once; wait for some to end"
    )
