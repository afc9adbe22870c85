"""A local stand-in for dbt Cloud's Administrative API that runs jobs with real dbt Core on DuckDB."""

from sandbox.dbt_cloud.app import SandboxApp, create_app
from sandbox.dbt_cloud.faults import FaultSettings
from sandbox.dbt_cloud.server import SandboxDbtCloud
from sandbox.dbt_cloud.state import SEED_JOBS, SandboxState

__all__ = ["SEED_JOBS", "FaultSettings", "SandboxApp", "SandboxDbtCloud", "SandboxState", "create_app"]
