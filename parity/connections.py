"""Where parity's warehouse connections come from: a target's Prefect profile block, or the local profiles.yml."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dbt2prefect.errors import ConfigError
from dbt2prefect.params import ProfilesStrategy
from dbt2prefect.profiles import profile_from_block, profile_from_local
from dbt2prefect.tenant import TenantSettings
from parity.runner import ProfileOutputs


def profile_outputs(tenant: TenantSettings, strategy: ProfilesStrategy) -> ProfileOutputs:
    """target -> dbt profile output, from the target's Prefect block or the local profiles.yml."""

    def output(target: str) -> Mapping[str, Any]:
        if strategy == "local":
            if tenant.local_profiles_dir is None:
                raise ConfigError("profiles_strategy 'local' needs local_profiles_dir in the tenant settings")
            profile = profile_from_local(tenant.local_profiles_dir, tenant.profile_name, target)
        else:
            profile = profile_from_block(tenant.profile_name, target, tenant.block_name(target))
        outputs: Mapping[str, Any] = profile[tenant.profile_name]["outputs"]
        if target not in outputs:
            raise ConfigError(f"profile {tenant.profile_name!r} has no output for target {target!r}")
        result: Mapping[str, Any] = outputs[target]
        return result

    return output
