"""dbt profiles built at run time, from Prefect blocks (default) or from a local profiles.yml.

Either way dbt reads a private temporary profiles dir (mode 0700, file 0600) that is removed when the run ends,
also when it fails. Secret values live only in the block and, for the duration of a run, in that file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import yaml
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from dbt2prefect.errors import ProfileError
from dbt2prefect.profile_fields import REQUIRED, SNOWFLAKE_ENV, Adapter
from dbt2prefect.snowflake_key import normalized_private_key


class DbtTargetProfile(Block):
    """Connection of one dbt target. Non-secret settings in `settings`, secrets in their own fields."""

    _block_type_name: ClassVar[str] = "dbt2prefect Target Profile"
    _block_type_slug: ClassVar[str] = "dbt2prefect-target-profile"
    _description: ClassVar[str] = "One dbt target's connection for run_dbt_wg (Snowflake key-pair or password, DuckDB)."

    adapter: Adapter = Field(description="dbt adapter type.")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Non-secret profile fields: account, user, role, warehouse, database, schema, threads, path...",
    )
    password: SecretStr | None = Field(default=None, description="Password (prefer key-pair auth).")
    private_key: SecretStr | None = Field(default=None, description="PEM private key for key-pair auth.")
    private_key_passphrase: SecretStr | None = Field(default=None, description="Passphrase of the private key.")

    def output(self, block_name: str) -> dict[str, Any]:
        """The dbt profile output for this target, secrets included (write it only to a private file)."""
        missing = [key for key in REQUIRED[self.adapter] if not self.settings.get(key)]
        if missing:
            raise ProfileError(
                f"block {block_name!r} lacks {', '.join(missing)} in its settings; "
                f"re-register it with `dbt2prefect blocks register`"
            )
        if "type" in self.settings and self.settings["type"] != self.adapter:
            raise ProfileError(f"block {block_name!r}: settings.type contradicts adapter {self.adapter!r}")
        result: dict[str, Any] = {**self.settings, "type": self.adapter}
        if self.adapter == "snowflake":
            if self.private_key is not None:
                result["private_key"] = self.private_key.get_secret_value()
                if self.private_key_passphrase is not None:
                    result["private_key_passphrase"] = self.private_key_passphrase.get_secret_value()
            elif self.password is not None:
                result["password"] = self.password.get_secret_value()
            elif not self.settings.get("authenticator"):
                raise ProfileError(
                    f"block {block_name!r} has neither a private key nor a password nor an authenticator; "
                    "set SNOWFLAKE_PRIVATE_KEY_PATH (or SNOWFLAKE_PASSWORD) and re-register it"
                )
        return result


def load_target_profile(block_name: str) -> DbtTargetProfile:
    """Load a target's block from the Prefect API, with an error that says how to create it."""
    try:
        block = DbtTargetProfile.load(block_name)
    except ValueError:
        raise ProfileError(
            f"Prefect block {block_name!r} ({DbtTargetProfile._block_type_slug}) does not exist; create it with "
            f"`dbt2prefect blocks register --target <target>` or use profiles_strategy='local'"
        ) from None
    if not isinstance(block, DbtTargetProfile):
        raise ProfileError(f"Prefect block {block_name!r} is not a {DbtTargetProfile._block_type_slug} block")
    return block


def block_from_env(
    adapter: Adapter, env: Mapping[str, str], duckdb_output: Mapping[str, Any] | None = None
) -> DbtTargetProfile:
    """Build a target block from environment variables (Snowflake) or a DuckDB profile output.

    Snowflake reads SNOWFLAKE_ACCOUNT, _USER, _ROLE, _WAREHOUSE, _DATABASE, _SCHEMA, _THREADS and either
    SNOWFLAKE_PRIVATE_KEY_PATH / SNOWFLAKE_PRIVATE_KEY (+ _PASSPHRASE) or SNOWFLAKE_PASSWORD. The key is kept
    as dbt-snowflake loads it (see `dbt2prefect.snowflake_key.normalized_private_key`).

    Raises:
        ProfileError: a variable is missing or wrong, or the key does not load with the passphrase.
    """
    if adapter == "duckdb":
        if duckdb_output is None:
            raise ProfileError("a DuckDB block needs a profile output (path, attach, threads)")
        return DbtTargetProfile(adapter="duckdb", settings={k: v for k, v in duckdb_output.items() if k != "type"})
    settings: dict[str, Any] = {key: env[var] for key, var in SNOWFLAKE_ENV.items() if env.get(var)}
    missing = [SNOWFLAKE_ENV[key] for key in REQUIRED["snowflake"] if key not in settings]
    if missing:
        raise ProfileError(f"environment variables {', '.join(missing)} are not set; export them and retry")
    settings["threads"] = _int_env(env, "SNOWFLAKE_THREADS", 8)
    key_text = env.get("SNOWFLAKE_PRIVATE_KEY")
    key_path = env.get("SNOWFLAKE_PRIVATE_KEY_PATH")
    if key_path and not key_text:
        try:
            key_text = Path(key_path).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"SNOWFLAKE_PRIVATE_KEY_PATH={key_path} cannot be read: {exc.strerror}") from None
    password = env.get("SNOWFLAKE_PASSWORD")
    if not key_text and not password and "authenticator" not in settings:
        raise ProfileError(
            "set SNOWFLAKE_PRIVATE_KEY_PATH (key-pair auth, preferred) or SNOWFLAKE_PASSWORD for the Snowflake block"
        )
    passphrase = env.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE")
    if key_text:
        # Saved only as dbt-snowflake loads it: a key it cannot load would fail every run, and replace a good block.
        source = (
            "SNOWFLAKE_PRIVATE_KEY" if env.get("SNOWFLAKE_PRIVATE_KEY") else f"SNOWFLAKE_PRIVATE_KEY_PATH={key_path}"
        )
        key_text = normalized_private_key(key_text, passphrase, source=source)
    return DbtTargetProfile(
        adapter="snowflake",
        settings=settings,
        private_key=SecretStr(key_text) if key_text else None,
        private_key_passphrase=SecretStr(passphrase) if passphrase else None,
        password=SecretStr(password) if password and not key_text else None,
    )


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ProfileError(f"environment variable {name}={value!r} is not a whole number") from None


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


@contextmanager
def private_profiles_dir(profiles: Mapping[str, Any]) -> Iterator[Path]:
    """A temporary 0700 folder holding `profiles.yml`, removed on exit whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix="dbt2prefect-profiles-"))
    try:
        os.chmod(folder, 0o700)
        _write_private(folder / "profiles.yml", yaml.safe_dump(dict(profiles), sort_keys=False))
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def profile_from_block(profile_name: str, target: str, block_name: str) -> dict[str, Any]:
    """A profiles.yml mapping whose single target comes from the target's block."""
    block = load_target_profile(block_name)
    return {profile_name: {"target": target, "outputs": {target: block.output(block_name)}}}


def _anchored(path: Any, base: Path) -> Any:
    text = str(path) if isinstance(path, str | Path) else None
    if text is None or "{{" in text or text == ":memory:" or ":" in text.split("/", 1)[0]:
        return path  # dbt renders a template itself; in memory, MotherDuck (md:...) and URLs are no files
    return path if Path(text).expanduser().is_absolute() else str(base / text)


def anchor_duckdb_paths(profile: dict[str, Any], base: Path) -> dict[str, Any]:
    """The profile with relative DuckDB paths (`path`, `attach[].path`) made absolute against `base`.

    dbt-duckdb opens a relative path against the working directory of the process; a team runs bare dbt in its
    project folder, so that is where such a path points. The flow runs elsewhere (a worker's folder), so a
    relative path would make it write another database file; anchoring it at the project folder keeps both on
    the same file.
    """
    result: dict[str, Any] = {}
    for name, body in profile.items():
        outputs = body.get("outputs") if isinstance(body, dict) else None
        if not isinstance(outputs, dict):
            result[name] = body
            continue
        anchored: dict[str, Any] = {}
        for target, output in outputs.items():
            if isinstance(output, dict) and output.get("type") == "duckdb":
                output = dict(output)
                if "path" in output:
                    output["path"] = _anchored(output["path"], base)
                if isinstance(output.get("attach"), list):
                    output["attach"] = [
                        {**item, "path": _anchored(item["path"], base)}
                        if isinstance(item, dict) and "path" in item
                        else item
                        for item in output["attach"]
                    ]
            anchored[target] = output
        result[name] = {**body, "outputs": anchored}
    return result


def profile_from_local(profiles_dir: Path, profile_name: str, target: str) -> dict[str, Any]:
    """The profile of a local profiles.yml, checked to hold the requested target."""
    path = profiles_dir / "profiles.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(
            f"profiles_strategy='local' needs {path}; create it or use profiles_strategy='blocks'"
        ) from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    profile = data.get(profile_name) if isinstance(data, dict) else None
    outputs = profile.get("outputs") if isinstance(profile, dict) else None
    if not isinstance(outputs, dict) or target not in outputs:
        known = ", ".join(sorted(outputs)) if isinstance(outputs, dict) else "none"
        raise ProfileError(
            f"{path} has no target {target!r} in profile {profile_name!r} (targets: {known}); "
            "use profiles_strategy='blocks' for dev/prod/parity"
        )
    assert isinstance(profile, dict)
    return {profile_name: {**profile, "target": target}}
