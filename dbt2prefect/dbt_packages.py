"""dbt packages of a run, installed in the run's private copy of the project, never in the team's own folder.

`dbt deps` first empties the project's packages-install-path (`dbt_packages/`): run in the team's folder, it would
delete what the team put there, and offline it fails. A run of a project with packages.yml (or dependencies.yml)
therefore works on a private copy: the project without its target, logs and installed packages, with `local:`
package paths made absolute so they still point where the team's file says. Packages are installed into that copy
from a cache keyed by the package files, so only the first run with a given set of packages needs the hub.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
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


def _project_config(project_dir: Path) -> dict[str, Any]:
    path = project_dir / "dbt_project.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} cannot be read as YAML: {exc}") from None
    return data if isinstance(data, dict) else {}


def project_profile(project_dir: Path) -> str:
    """The profile name the project's dbt_project.yml asks for (`profile:`)."""
    name = _project_config(project_dir).get("profile")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{project_dir / 'dbt_project.yml'} names no `profile:`; add the profile dbt should use")
    return name


def _generated_folders(project_dir: Path) -> set[str]:
    config = _project_config(project_dir)
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


def install_packages(copy: Path, cache_root: Path, timeout: float = 600.0) -> str:
    """Install the packages of a private copy: from the cache, else with `dbt deps` (then cached).

    Returns:
        "cache" or "dbt deps": where the packages came from.

    Raises:
        ExternalServiceError: the package hub could not be reached (exit 3).
        DbtRunError: `dbt deps` failed for another reason (its output is in the message).
    """
    install = copy / str(_project_config(copy).get("packages-install-path") or "dbt_packages")
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
        raise DbtRunError(f"dbt deps did not finish within {timeout:.0f} s for {copy}") from None
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        files = " / ".join(name for name in PACKAGE_FILES if (copy / name).is_file())
        if "External connection exception" in output or "Max retries exceeded" in output:
            hub = os.environ.get("DBT_PACKAGE_HUB_URL", DEFAULT_HUB)
            raise ExternalServiceError(
                f"dbt deps could not reach the dbt package hub {hub} to install the packages of {files}: connect "
                "this machine to it, set DBT_PACKAGE_HUB_URL to a mirror, or vendor the packages as `local:` "
                "packages; a later run with the same packages installs them from the cache"
            )
        lines = [line for line in output.splitlines() if line.strip()][-8:]
        raise DbtRunError(f"dbt deps failed for {files}: " + " | ".join(lines))
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


def prepared_project(project_dir: Path, destination: Path, cache_root: Path) -> Path:
    """The folder dbt should run in: `project_dir` itself without packages, else a private copy with them installed.

    Raises:
        ExternalServiceError, DbtRunError: see `install_packages`.
    """
    if not has_packages(project_dir):
        return project_dir
    shutil.rmtree(destination, ignore_errors=True)
    copy = private_copy(project_dir, destination)
    install_packages(copy, cache_root)
    return copy
