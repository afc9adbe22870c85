"""The sandbox's stand-in for GitHub: a bare git repository on this machine that a worker clones over `file://`.

A managed pool's run clones the tenant's repository into a throw-away container and runs the flow from there; it
shares no folder with the person who deployed it. The sandbox's worker does the same with `file://.../code.git`:

    code/       a checkout made from a snapshot of this repository (the operator's side: the tenant settings the
                stack writes live here, so the flow run finds them at the same path relative to its clone)
    code.git/   the bare repository `code/` pushes to: what the deployment's `git_clone` pull step clones

The snapshot is this checkout as it is, uncommitted changes included: the files git tracks and the untracked ones
it does not ignore (`git ls-files --cached --others --exclude-standard`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dbt2prefect.tenant import REPO_ROOT
from sandbox.errors import SandboxError

BRANCH = "main"

_IDENTITY = {
    "GIT_AUTHOR_NAME": "dbt2prefect sandbox",
    "GIT_AUTHOR_EMAIL": "sandbox@dbt2prefect.invalid",
    "GIT_COMMITTER_NAME": "dbt2prefect sandbox",
    "GIT_COMMITTER_EMAIL": "sandbox@dbt2prefect.invalid",
}
_SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main")
"""No hooks or signing of the person's git configuration run on the sandbox's own repositories."""


class CodeRemoteError(SandboxError):
    """The snapshot of the checkout or its repository could not be made."""


def _git(*args: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | _IDENTITY
    try:
        done = subprocess.run(["git", *_SAFE, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise CodeRemoteError(
            f"cannot run git ({exc.strerror or exc}); install git, the sandbox's code remote needs it"
        ) from None
    if done.returncode != 0:
        raise CodeRemoteError(f"git {' '.join(args)} in {cwd} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def snapshot_files(source: Path = REPO_ROOT) -> list[str]:
    """The files of checkout `source` a clone of it should hold, relative to it: tracked and untracked-not-ignored
    ones that exist now (a tracked file deleted in the working tree is left out).

    Raises:
        CodeRemoteError: `source` is not a git checkout.
    """
    try:
        listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=source).split("\0")
    except CodeRemoteError as exc:
        raise CodeRemoteError(
            f"{source} is not a git checkout ({exc}); the sandbox's worker clones a snapshot of it, so run the "
            "sandbox from a clone of the repository"
        ) from None
    names = dict.fromkeys(name for name in listed if name)
    return [name for name in names if (source / name).is_file() or (source / name).is_symlink()]


@dataclass(frozen=True)
class CodeRemote:
    """The operator's checkout and the bare repository it pushes to (see the module's docstring)."""

    checkout: Path
    bare: Path
    branch: str = BRANCH

    @property
    def url(self) -> str:
        """What a worker clones: `file:///.../code.git`."""
        return self.bare.as_uri()

    def code_storage(self) -> dict[str, str]:
        """`[tenant.code_storage]` of a deployment that clones this repository."""
        return {"repository": self.url, "branch": self.branch}

    def publish(self, message: str) -> str:
        """Commit everything in the checkout (if anything changed) and push it; returns the pushed commit's id.

        Raises:
            CodeRemoteError: git failed.
        """
        _git("add", "-A", cwd=self.checkout)
        if _git("status", "--porcelain", cwd=self.checkout).strip():
            _git("commit", "-q", "-m", message, cwd=self.checkout)
        _git("push", "-q", "origin", f"HEAD:refs/heads/{self.branch}", cwd=self.checkout)
        return _git("rev-parse", "HEAD", cwd=self.checkout).strip()


def create_code_remote(checkout: Path, bare: Path, *, source: Path = REPO_ROOT, branch: str = BRANCH) -> CodeRemote:
    """Copy a snapshot of checkout `source` to the new folder `checkout`, make it a git checkout on `branch`, and
    push its first commit to the new bare repository `bare`. Commit more with `CodeRemote.publish`.

    Raises:
        CodeRemoteError: `source` is not a git checkout, `checkout` or `bare` exist already, or git failed.
    """
    for folder in (checkout, bare):
        if folder.exists():
            raise CodeRemoteError(f"{folder} exists already; the sandbox makes its code remote in new folders only")
    names = snapshot_files(source)
    for name in names:
        target = checkout / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target, follow_symlinks=False)
    checkout.mkdir(parents=True, exist_ok=True)
    bare.mkdir(parents=True)
    _git("init", "-q", "--bare", "-b", branch, cwd=bare)
    _git("init", "-q", "-b", branch, cwd=checkout)
    remote = CodeRemote(checkout, bare, branch)
    _git("remote", "add", "origin", remote.url, cwd=checkout)
    remote.publish(f"Snapshot of {source} for the sandbox's worker")
    return remote
