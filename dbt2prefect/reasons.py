"""Every reason code a migration finding can carry, in one place.

Tenant settings acknowledge findings as '<reason_code>:<job_id>' (`acknowledged_findings`), so a code is part of
the settings' vocabulary: the settings loader (`dbt2prefect.tenant`) refuses a key whose code is not listed here,
naming the nearest one, and a `migration.plan.Finding` cannot be made with one. It lives in the core because both
need it. Add a code here before a translation step reports it.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Why a job has a finding (the `reason_code` of `migration.plan.Finding` and of `DbtCommandError`)."""

    # The job's steps (codes of dbt2prefect.dbt_cli's DbtCommandError as well).
    STEPS_EMPTY = "steps_empty"
    STEP_NOT_DBT = "step_not_dbt"
    STEP_UNPARSEABLE = "step_unparseable"
    STEP_UNKNOWN_COMMAND = "step_unknown_command"
    STEP_UNKNOWN_FLAG = "step_unknown_flag"
    STEP_INTERACTIVE = "step_interactive"
    STEP_RESERVED_FLAG = "step_reserved_flag"
    STEP_BAD_VARS = "step_bad_vars"
    STEP_BAD_THREADS = "step_bad_threads"
    STEP_BAD_TARGET = "step_bad_target"
    STEP_STATE_FLAG = "step_state_flag"
    PARAMETERS_INVALID = "parameters_invalid"
    # dbt Cloud features without a Prefect equivalent, or that a person must check.
    DEFERRAL = "deferral"
    COMPARE_CHANGES = "compare_changes"
    LINT = "lint"
    LIFECYCLE_WEBHOOKS = "lifecycle_webhooks"
    JOB_ENV_VARS = "job_env_vars"
    CUSTOM_BRANCH = "custom_branch"
    DBT_VERSION_PINNED = "dbt_version_pinned"
    ENV_VARS = "env_vars"
    ENV_VAR_SECRET = "env_var_secret"
    ENV_VAR_NAME = "env_var_name"
    ENVIRONMENT_UNMAPPED = "environment_unmapped"
    # The job's state and triggers.
    JOB_DELETED = "job_deleted"
    JOB_DEACTIVATED = "job_deactivated"
    NO_TRIGGER = "no_trigger"
    SCHEDULE_INVALID = "schedule_invalid"
    SCHEDULE_NOT_EQUIVALENT = "schedule_not_equivalent"
    SCHEDULE_RRULE = "schedule_rrule"
    JOB_CHAINING = "job_chaining"
    JOB_CHAIN_CYCLE = "job_chain_cycle"
    CI_TRIGGER = "ci_trigger"
    GIT_TRIGGER_OFF = "git_trigger_off"
    CI_ISOLATION = "ci_isolation"
    MERGE_TRIGGER = "merge_trigger"
    # Notifications.
    NOTIFICATION = "notification"
    NOTIFICATION_BLOCK = "notification_block"
    NOTIFICATION_UNRESOLVED = "notification_unresolved"
