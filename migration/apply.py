"""The deployment description → Prefect API (Prefect Cloud or a local server), idempotent by schedule slug.

`apply` is one rendering of `migration.deployment.DeploymentSpec` (prefect.yaml is the other). The deployment is
created once; afterwards it is patched, never re-created, because re-creating a deployment through
POST /deployments/ replaces all of its schedules. Schedules are matched by the job their slug names: only slugs
`job-<id>--<job name>` (and `job-<id>`, as earlier versions named them) belong to this tool, so schedules added by
hand survive every apply; a schedule whose slug names its job otherwise (the job was renamed, or it was applied as
`job-<id>`) is renamed in place (field `slug`), keeping its id, its flag and its runs. A job has exactly one
schedule after apply: any other schedule of a planned job (`prefect deploy` matches by exact slug, so deploying a
file with the new slug beside an old `job-<id>` adds a second) is removed, even without --prune. A new schedule
starts with the active flag of the description (the cutover ledger's); an existing schedule's flag is never touched (cutover owns it). The
deployment's triggers (chained jobs) are automations matched the same way, by name `job-<id>-after-job-<id>`,
built as `prefect deploy` builds them from prefect.yaml; their enabled flag is cutover's too. So are the
notification automations (`job-<id>-notify-<id>`), which send through the notification blocks the tenant settings
name; a missing block stops apply before any change. While shadowing is on, the shadow deployment
(`<deployment>-shadow`) and its trigger on completed dbt Cloud runs are applied the same way (created, then patched;
the trigger matched by name among the shadow deployment's automations). The trigger's enabled flag is the
setting's, not cutover's: turning shadowing off turns it off, and leaves the deployment. With a guarded window,
the guard's deployment (`<deployment>-guard`) and its triggers (`job-<id>-guard`, owned by it) are applied the same
way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from dbt2prefect.names import guard_trigger_job, is_job_slug, is_trigger_name, schedule_job_id, shadow_deployment_name
from dbt2prefect.prefect_gateway import DEPLOYMENT_SETTINGS, PrefectGateway, gateway_or_connect
from dbt2prefect.tenant import REPO_ROOT
from migration.deployment import (
    GUARD_ENTRYPOINT,
    SHADOW_ENTRYPOINT,
    SHADOW_FLOW,
    DeploymentSpec,
    GuardTriggerSpec,
    ScheduleSpec,
    ShadowTriggerSpec,
    TriggerSpec,
    guard_deployment,
    local_store_problem,
    placeholder_problem,
    shadow_deployment,
    shadow_trigger,
)
from migration.errors import ApplyError
from migration.notification_automations import (
    all_notification_automations,
    desired_notification,
    notification_automations,
    notification_blocks,
    one_per_name,
    template_problem,
)
from migration.plan import PlannedSchedule

if TYPE_CHECKING:
    from prefect.client.schemas.objects import DeploymentSchedule
    from prefect.client.schemas.responses import DeploymentResponse
    from prefect.events.schemas.automations import Automation, AutomationCore

ChangeStatus = Literal["added", "changed", "unchanged", "orphaned", "removed"]


class _DiffModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScheduleChange(_DiffModel):
    """What apply does (or did) to one schedule slug, or to one automation (trigger or notification) by name."""

    slug: str
    status: ChangeStatus
    fields: list[str] = Field(default_factory=list)
    active: bool | None = None
    reason: str | None = None
    """Why it is removed when no --prune asked for it (a job's second schedule)."""


class DeploymentChange(_DiffModel):
    """What apply does (or did) to the deployment itself."""

    name: str
    status: Literal["added", "changed", "unchanged"]
    fields: list[str] = Field(default_factory=list)


class ApplyDiff(_DiffModel):
    """The difference between the plan and the Prefect API, per deployment and per slug."""

    deployment: DeploymentChange
    schedules: list[ScheduleChange]
    triggers: list[ScheduleChange] = Field(default_factory=list)
    notifications: list[ScheduleChange] = Field(default_factory=list)
    shadow: DeploymentChange | None = None
    """The shadow deployment (None: shadowing is off and none was made)."""
    shadow_triggers: list[ScheduleChange] = Field(default_factory=list)
    guard: DeploymentChange | None = None
    """The guard's deployment (None: no guarded window)."""
    guard_triggers: list[ScheduleChange] = Field(default_factory=list)
    applied: bool = False
    automations_only: bool = False
    """Only the notification automations were compared (the deployment is `prefect deploy`'s: see
    `apply_notifications`); the deployment and its schedules are reported unchanged, unread."""
    server_state: dict[str, str] = Field(default_factory=dict)
    """A digest of each object of the Prefect API the diff was computed from (`deployment`, `schedule <slug>`,
    `automation <name>`, `notification block <ref>`, `shadow deployment`, `guard deployment`): a write of this diff
    refuses when a new read differs."""

    @property
    def has_changes(self) -> bool:
        """True when applying would change anything."""
        changes = [*self.schedules, *self.triggers, *self.notifications, *self.shadow_triggers, *self.guard_triggers]
        shadow = self.shadow is not None and self.shadow.status != "unchanged"
        guard = self.guard is not None and self.guard.status != "unchanged"
        return (
            self.deployment.status != "unchanged"
            or shadow
            or guard
            or any(s.status in ("added", "changed", "removed") for s in changes)
        )


Scheduled = ScheduleSpec | PlannedSchedule
"""What a schedule's timing and parameters are compared from: the description's or the plan's."""


def _desired_schedule(planned: Scheduled) -> Any:
    from prefect.client.schemas.schedules import CronSchedule, RRuleSchedule

    if planned.rrule is not None:
        return RRuleSchedule(rrule=planned.rrule, timezone=planned.timezone)
    return CronSchedule(cron=planned.cron or "", timezone=planned.timezone, day_or=planned.day_or)


def schedule_fields(current: DeploymentSchedule, planned: Scheduled) -> list[str]:
    """Names of what differs between a schedule on the server and the planned one (active is not compared)."""
    want = _desired_schedule(planned)
    have = current.schedule
    fields: list[str] = []
    if type(have) is not type(want):
        fields.append("schedule")
    else:
        for name in ("cron", "rrule", "timezone", "day_or"):
            if getattr(have, name, None) != getattr(want, name, None):
                fields.append(name)
    if dict(current.parameters or {}) != planned.parameters:
        fields.append("parameters")
    return fields


def match_schedules(
    current: list[DeploymentSchedule], planned: Sequence[Scheduled]
) -> tuple[dict[str, DeploymentSchedule], list[DeploymentSchedule]]:
    """The server's schedule of each planned one (by planned slug) and this tool's schedules no plan entry takes.

    A planned schedule takes the server's schedule of the same slug, else one whose slug names the same job (an
    earlier name); a job's second schedule is left over, as are those of jobs the plan lacks.
    """
    ours = sorted((s for s in current if schedule_job_id(s.slug) is not None), key=lambda s: s.slug or "")
    matched: dict[str, DeploymentSchedule] = {}
    for want in planned:
        job_id = schedule_job_id(want.slug)
        taken = {id(s) for s in matched.values()}
        free = [s for s in ours if id(s) not in taken and schedule_job_id(s.slug) == job_id]
        found = next((s for s in free if s.slug == want.slug), free[0] if free else None)
        if found is not None:
            matched[want.slug] = found
    taken = {id(s) for s in matched.values()}
    return matched, [s for s in ours if id(s) not in taken]


def second_schedule_reason(job_id: int | None) -> str:
    """Why apply removes a schedule of a planned job that another schedule of the job already stands for."""
    return f"second schedule of job {job_id}"


def _deployment_settings(spec: DeploymentSpec, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "entrypoint": spec.entrypoint,
        "work_pool_name": spec.work_pool,
        "parameters": spec.parameters,
        "description": spec.description,
        "parameter_openapi_schema": schema,
        "enforce_parameter_schema": spec.enforce_parameter_schema,
        "pull_steps": spec.pull_steps,
        "job_variables": spec.job_variables,
    }


def desired_automation(spec: DeploymentSpec, trigger: TriggerSpec, deployment_id: UUID) -> AutomationCore:
    """The automation of a trigger, built the way `prefect deploy` builds it from prefect.yaml's `triggers`."""
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    deployment_trigger = DeploymentEventTrigger.model_validate(trigger.event_trigger(spec.name))
    deployment_trigger.set_deployment_id(deployment_id)
    return deployment_trigger.as_automation()


def _normalized(value: Any) -> Any:
    """A JSON dump with its lists of strings sorted: sets (a trigger's `expect`, resource ids) dump in any order."""
    if isinstance(value, dict):
        return {key: _normalized(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [_normalized(item) for item in value]
        return sorted(items) if all(isinstance(item, str) for item in items) else items
    return value


def _automation_fields(current: Automation, desired: AutomationCore) -> list[str]:
    """Names of what differs between an automation on the server and the desired one (enabled is not compared)."""
    fields = []
    if current.description != desired.description:
        fields.append("description")
    if _normalized(current.trigger.model_dump(mode="json", exclude={"id"})) != _normalized(
        desired.trigger.model_dump(mode="json", exclude={"id"})
    ):
        fields.append("trigger")
    if _normalized([a.model_dump(mode="json") for a in current.actions]) != _normalized(
        [a.model_dump(mode="json") for a in desired.actions]
    ):
        fields.append("actions")
    return fields


def _all_triggers(prefect: PrefectGateway, deployment_id: UUID) -> list[Automation]:
    return [a for a in prefect.read_related_automations(deployment_id) if is_trigger_name(a.name)]


def deployment_triggers(prefect: PrefectGateway, deployment_id: UUID) -> dict[str, Automation]:
    """The deployment's triggers by name: its related automations named `job-<id>-after-job-<id>` (one per name,
    see `one_per_name`).

    (The API answers related automations without saying which the deployment owns.)
    """
    return one_per_name(_all_triggers(prefect, deployment_id))[0]


def _duplicates(
    prefect: PrefectGateway, spec: DeploymentSpec, deployment_id: UUID | None
) -> tuple[list[Automation], list[Automation]]:
    """The triggers and the notification automations that duplicate another of the same name."""
    triggers = _all_triggers(prefect, deployment_id) if deployment_id is not None else []
    notifications = all_notification_automations(prefect, spec.name)
    return one_per_name(triggers)[1], one_per_name(notifications)[1]


def _duplicate_changes(extras: list[Automation]) -> list[ScheduleChange]:
    return [ScheduleChange(slug=a.name, status="removed", fields=["duplicate"], active=a.enabled) for a in extras]


def _remove_duplicates(prefect: PrefectGateway, spec: DeploymentSpec, deployment_id: UUID | None) -> None:
    """Delete what duplicates an automation of ours by name: another apply running at the same time created it.

    Run after this apply's own creations, so that of two concurrent applies the later one always sees both
    copies; both keep the same one (`one_per_name`), and deleting what the other already deleted is no error.
    """
    triggers, notifications = _duplicates(prefect, spec, deployment_id)
    for automation in [*triggers, *notifications]:
        prefect.delete_automation(automation.id)  # gone already is no error: the concurrent apply removed it


Desired = dict[str, tuple["AutomationCore", bool]]
"""Automations the description wants, by name: each with the enabled flag a new one starts with."""


def _automation_changes(current: dict[str, Automation], desired: Desired, prune: bool) -> list[ScheduleChange]:
    changes: list[ScheduleChange] = []
    for name, (automation, enabled) in desired.items():
        existing = current.get(name)
        if existing is None:
            changes.append(ScheduleChange(slug=name, status="added", active=enabled))
            continue
        fields = _automation_fields(existing, automation)
        status: ChangeStatus = "changed" if fields else "unchanged"
        changes.append(ScheduleChange(slug=name, status=status, fields=fields, active=existing.enabled))
    for name, existing in sorted(current.items()):
        if name not in desired:
            removable = prune and not existing.enabled
            changes.append(
                ScheduleChange(slug=name, status="removed" if removable else "orphaned", active=existing.enabled)
            )
    return sorted(changes, key=lambda c: c.slug)


def desired_shadow_automation(trigger: ShadowTriggerSpec, shadow_id: UUID) -> AutomationCore:
    """The automation of the shadow trigger: a trigger of the shadow deployment `shadow_id`."""
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    deployment_trigger = DeploymentEventTrigger.model_validate(trigger.event_trigger())
    deployment_trigger.set_deployment_id(shadow_id)
    return deployment_trigger.as_automation()


def _shadow_triggers(
    prefect: PrefectGateway, spec: DeploymentSpec, shadow_id: UUID
) -> tuple[dict[str, Automation], list[Automation], Desired]:
    """The shadow trigger on the server (the shadow deployment's related automation of that name; duplicates
    apart) and as the description wants it: on while shadowing is on, else off."""
    trigger = spec.shadow_trigger or shadow_trigger(spec.name, enabled=False)
    current, extra = one_per_name([a for a in prefect.read_related_automations(shadow_id) if a.name == trigger.name])
    return current, extra, {trigger.name: (desired_shadow_automation(trigger, shadow_id), trigger.enabled)}


def _triggers(
    prefect: PrefectGateway, spec: DeploymentSpec, deployment_id: UUID
) -> tuple[dict[str, Automation], Desired]:
    """The deployment's triggers on the server and as the description wants them."""
    current = deployment_triggers(prefect, deployment_id)
    return current, {t.name: (desired_automation(spec, t, deployment_id), t.enabled) for t in spec.triggers}


def _apply_automations(
    prefect: PrefectGateway, current: dict[str, Automation], desired: Desired, changes: list[ScheduleChange]
) -> None:
    """Create, update (keeping the enabled flag: cutover owns it) or delete automations by name."""
    for change in changes:
        if change.status == "added":
            prefect.create_automation(desired[change.slug][0])
        elif change.status == "changed":
            existing, (automation, _) = current[change.slug], desired[change.slug]
            # The update body has no owner: the automation keeps the one it was created with.
            update = automation.model_dump(exclude={"owner_resource"}) | {"enabled": existing.enabled}
            prefect.update_automation(existing.id, type(automation).model_validate(update))
        elif change.status == "removed" and "duplicate" not in change.fields:
            prefect.delete_automation(current[change.slug].id)


def desired_guard_automation(spec: DeploymentSpec, trigger: GuardTriggerSpec, guard_id: UUID) -> AutomationCore:
    """The automation of a guard trigger: a trigger of the guard deployment `guard_id`."""
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    deployment_trigger = DeploymentEventTrigger.model_validate(trigger.event_trigger(spec.name))
    deployment_trigger.set_deployment_id(guard_id)
    return deployment_trigger.as_automation()


def _guard_automations(
    prefect: PrefectGateway, spec: DeploymentSpec, guard_id: UUID
) -> tuple[dict[str, Automation], Desired, list[Automation]]:
    """The guard triggers on the server (related automations of the guard deployment named `job-<id>-guard`, one
    per name, and the others of the same name), and as the description wants them."""
    found = [a for a in prefect.read_related_automations(guard_id) if guard_trigger_job(a.name) is not None]
    current, extra = one_per_name(found)
    desired = {t.name: (desired_guard_automation(spec, t, guard_id), t.enabled) for t in spec.guard_triggers}
    return current, desired, extra


def flow_parameter_schema(entrypoint: str) -> dict[str, Any]:
    """The flow's parameter schema (what Prefect validates schedule parameters against).

    Raises:
        ApplyError: the entrypoint cannot be loaded.
    """
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    path, _, name = entrypoint.partition(":")
    try:
        flow: Any = load_flow_from_entrypoint(f"{REPO_ROOT / path}:{name}")
    except Exception as exc:  # import errors of user code come in every type
        raise ApplyError(
            f"cannot load the flow entrypoint {entrypoint!r}: {exc}; fix `entrypoint` in settings"
        ) from None
    # As `prefect deploy` sends it (RunnerDeployment), so both renderings store the same schema.
    schema: dict[str, Any] = parameter_schema(flow).model_dump(exclude_unset=True)
    return schema


@dataclass(frozen=True)
class _ServerState:
    """What one read of the Prefect API found, with what the description wants of it: a diff is computed from
    one such read, and a write uses the objects of the read its diff was checked against."""

    deployment: DeploymentResponse | None
    schedules: dict[str, DeploymentSchedule]
    triggers: dict[str, Automation]
    wanted_triggers: Desired
    extra_triggers: list[Automation]
    notifications: dict[str, Automation]
    wanted_notifications: Desired
    extra_notifications: list[Automation]
    blocks: dict[str, UUID]
    shadow_deployment: DeploymentResponse | None = None
    shadow_triggers: dict[str, Automation] | None = None
    wanted_shadow_triggers: Desired | None = None
    extra_shadow_triggers: list[Automation] | None = None
    guarded: bool = False
    """The description has a guarded window: the guard's deployment and triggers were read too."""
    guard: DeploymentResponse | None = None
    guard_triggers: dict[str, Automation] = field(default_factory=dict)
    wanted_guard_triggers: Desired = field(default_factory=dict)
    extra_guard_triggers: list[Automation] = field(default_factory=list)

    def digests(self) -> dict[str, str]:
        """A digest of each object read, by what it is (`deployment`, `schedule <slug>`, `automation <name>`,
        `notification block <ref>`, `shadow deployment`, `guard deployment`): two reads with equal digests give the
        same diff."""
        found: dict[str, Any] = {"deployment": _deployment_fingerprint(self.deployment)}
        if self.shadow_deployment is not None:
            found["shadow deployment"] = _deployment_fingerprint(self.shadow_deployment)
        if self.guarded:
            found["guard deployment"] = _deployment_fingerprint(self.guard)
        for slug, schedule in self.schedules.items():
            found[f"schedule {slug}"] = schedule.model_dump(
                mode="json", include={"id", "schedule", "active", "parameters", "slug"}
            )
        automations: dict[str, list[Any]] = {}
        everything = [
            *self.triggers.values(),
            *self.extra_triggers,
            *self.notifications.values(),
            *self.extra_notifications,
            *(self.shadow_triggers or {}).values(),
            *(self.extra_shadow_triggers or []),
            *self.guard_triggers.values(),
            *self.extra_guard_triggers,
        ]
        for automation in everything:
            automations.setdefault(automation.name, []).append(automation.model_dump(mode="json"))
        for name, group in automations.items():
            found[f"automation {name}"] = sorted(group, key=lambda a: str(a["id"]))
        for reference, block_id in self.blocks.items():
            found[f"notification block {reference}"] = str(block_id)
        return {key: _digest(value) for key, value in sorted(found.items())}


def _deployment_fingerprint(deployment: DeploymentResponse | None) -> dict[str, Any] | None:
    if deployment is None:
        return None
    return {"id": str(deployment.id), **{key: getattr(deployment, key, None) for key in DEPLOYMENT_SETTINGS}}


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_state(prefect: PrefectGateway, spec: DeploymentSpec, *, automations_only: bool = False) -> _ServerState:
    """Read what the diff compares: the deployment, its schedules of jobs (`job-<id>...`) and triggers, the notification
    automations and blocks, and with a guarded window the guard's deployment and its `job-<id>-guard` triggers
    (with `automations_only`, all but the deployment, its schedules and its triggers).

    Raises:
        ApplyError: a notification block is missing or cannot notify.
    """
    blocks = notification_blocks(prefect, spec)
    notifications = notification_automations(prefect, spec.name)
    wanted_notifications = {
        n.name: (desired_notification(spec, n, blocks[n.block]), n.enabled) for n in spec.notifications
    }
    deployment = None if automations_only else prefect.read_deployment(spec.full_name)
    extra_triggers, extra_notifications = _duplicates(prefect, spec, deployment.id if deployment else None)
    schedules: dict[str, DeploymentSchedule] = {}
    triggers: dict[str, Automation] = {}
    wanted_triggers: Desired = {}
    if deployment is not None:
        planned = {s.slug for s in spec.schedules}
        for schedule in prefect.read_schedules(deployment.id):
            if schedule.slug and (is_job_slug(schedule.slug) or schedule.slug in planned):
                schedules[schedule.slug] = schedule
        triggers, wanted_triggers = _triggers(prefect, spec, deployment.id)
    shadow = prefect.read_deployment(f"{SHADOW_FLOW}/{shadow_deployment_name(spec.name)}")
    shadow_triggers: dict[str, Automation] = {}
    extra_shadow_triggers: list[Automation] = []
    wanted_shadow: Desired = {}
    if shadow is not None:
        shadow_triggers, extra_shadow_triggers, wanted_shadow = _shadow_triggers(prefect, spec, shadow.id)
    guarded = bool(spec.guard_triggers)
    guard = prefect.read_deployment(guard_deployment(spec).full_name) if guarded else None
    guard_triggers: dict[str, Automation] = {}
    wanted_guard_triggers: Desired = {}
    extra_guard_triggers: list[Automation] = []
    if guard is not None:
        guard_triggers, wanted_guard_triggers, extra_guard_triggers = _guard_automations(prefect, spec, guard.id)
    return _ServerState(
        deployment=deployment,
        schedules=schedules,
        triggers=triggers,
        wanted_triggers=wanted_triggers,
        extra_triggers=extra_triggers,
        notifications=notifications,
        wanted_notifications=wanted_notifications,
        extra_notifications=extra_notifications,
        blocks=blocks,
        shadow_deployment=shadow,
        shadow_triggers=shadow_triggers,
        wanted_shadow_triggers=wanted_shadow,
        extra_shadow_triggers=extra_shadow_triggers,
        guarded=guarded,
        guard=guard,
        guard_triggers=guard_triggers,
        wanted_guard_triggers=wanted_guard_triggers,
        extra_guard_triggers=extra_guard_triggers,
    )


def _shadow_diff(
    state: _ServerState, spec: DeploymentSpec, schema: dict[str, Any] | None
) -> tuple[DeploymentChange | None, list[ScheduleChange]]:
    """What apply does to the shadow deployment and its trigger (None: shadowing is off and there is none). Unlike
    the jobs' automations, the trigger's enabled flag is the setting's: turning shadowing off turns it off."""
    existing = state.shadow_deployment
    trigger = spec.shadow_trigger
    shadow = shadow_deployment(spec)
    if existing is None:
        if trigger is None:
            return None, []
        added = ScheduleChange(slug=trigger.name, status="added", active=trigger.enabled)
        return DeploymentChange(name=shadow.full_name, status="added"), [added]
    changed: list[str] = []
    if trigger is not None:
        wanted = _deployment_settings(shadow, schema or {})
        changed = sorted(key for key, value in wanted.items() if getattr(existing, key, None) != value)
    changes: list[ScheduleChange] = []
    current = state.shadow_triggers or {}
    for name, (automation, enabled) in (state.wanted_shadow_triggers or {}).items():
        found = current.get(name)
        if found is None:
            if enabled:
                changes.append(ScheduleChange(slug=name, status="added", active=enabled))
            continue
        fields = _automation_fields(found, automation) + (["enabled"] if found.enabled != enabled else [])
        changes.append(
            ScheduleChange(slug=name, status="changed" if fields else "unchanged", fields=fields, active=enabled)
        )
    changes += _duplicate_changes(state.extra_shadow_triggers or [])
    status: Literal["changed", "unchanged"] = "changed" if changed else "unchanged"
    return DeploymentChange(name=shadow.full_name, status=status, fields=changed), changes


def _write_shadow(
    prefect: PrefectGateway, spec: DeploymentSpec, schema: dict[str, Any] | None, state: _ServerState, diff: ApplyDiff
) -> None:
    """Create or patch the shadow deployment, then create or update its trigger with the setting's enabled flag
    (the deployment itself is never deleted)."""
    if diff.shadow is None:
        return
    existing = state.shadow_deployment
    settings = _deployment_settings(shadow_deployment(spec), schema or {})
    if existing is None:
        shadow_id = prefect.create_deployment(SHADOW_FLOW, shadow_deployment_name(spec.name), [], settings)
        current, _, desired = _shadow_triggers(prefect, spec, shadow_id)
    else:
        shadow_id = existing.id
        if diff.shadow.status == "changed":
            prefect.update_deployment(shadow_id, settings)
        current, desired = state.shadow_triggers or {}, state.wanted_shadow_triggers or {}
    for change in diff.shadow_triggers:
        if change.status == "added":
            prefect.create_automation(desired[change.slug][0])
        elif change.status == "changed":
            automation, enabled = desired[change.slug]
            update = automation.model_dump(exclude={"owner_resource"}) | {"enabled": enabled}
            prefect.update_automation(current[change.slug].id, type(automation).model_validate(update))
        elif change.status == "removed":
            prefect.delete_automation(next(a.id for a in state.extra_shadow_triggers or [] if a.name == change.slug))


def _guard_diff(
    state: _ServerState, spec: DeploymentSpec, schema: dict[str, Any]
) -> tuple[DeploymentChange | None, list[ScheduleChange]]:
    """What apply does to the guard's deployment and its triggers (None, []: no guarded window)."""
    if not state.guarded:
        return None, []
    guard = guard_deployment(spec)
    if state.guard is None:
        added = [ScheduleChange(slug=t.name, status="added", active=t.enabled) for t in spec.guard_triggers]
        return DeploymentChange(name=guard.full_name, status="added"), added
    wanted = _deployment_settings(guard, schema)
    changed = sorted(key for key, value in wanted.items() if getattr(state.guard, key, None) != value)
    status: Literal["changed", "unchanged"] = "changed" if changed else "unchanged"
    triggers = _automation_changes(state.guard_triggers, state.wanted_guard_triggers, prune=False)
    return DeploymentChange(name=guard.full_name, status=status, fields=changed), triggers


def _diff_of(
    state: _ServerState,
    spec: DeploymentSpec,
    schema: dict[str, Any],
    *,
    prune: bool,
    shadow_schema: dict[str, Any] | None = None,
    guard_schema: dict[str, Any] | None = None,
) -> ApplyDiff:
    """The diff between the description and one read of the Prefect API (`shadow_schema`, `guard_schema`: the
    shadow and guard flows' parameter schemas, needed while shadowing is on / when the description has guard
    triggers)."""
    shadow, shadow_triggers = _shadow_diff(state, spec, shadow_schema)
    guard, guard_triggers = _guard_diff(state, spec, guard_schema or {})
    name = spec.full_name
    notifications = _automation_changes(state.notifications, state.wanted_notifications, prune)
    notifications += _duplicate_changes(state.extra_notifications)
    deployment = state.deployment
    if deployment is None:
        return ApplyDiff(
            deployment=DeploymentChange(name=name, status="added"),
            schedules=[ScheduleChange(slug=s.slug, status="added", active=s.active) for s in spec.schedules],
            triggers=[ScheduleChange(slug=t.name, status="added", active=t.enabled) for t in spec.triggers],
            notifications=notifications,
            shadow=shadow,
            shadow_triggers=shadow_triggers,
            guard=guard,
            guard_triggers=guard_triggers,
            server_state=state.digests(),
        )
    wanted = _deployment_settings(spec, schema)
    changed = sorted(key for key, value in wanted.items() if getattr(deployment, key, None) != value)
    matched, left_over = match_schedules(list(state.schedules.values()), spec.schedules)
    changes: list[ScheduleChange] = []
    for planned in spec.schedules:
        existing = matched.get(planned.slug)
        if existing is None:
            changes.append(ScheduleChange(slug=planned.slug, status="added", active=planned.active))
            continue
        fields = schedule_fields(existing, planned) + (["slug"] if existing.slug != planned.slug else [])
        status: ChangeStatus = "changed" if fields else "unchanged"
        changes.append(ScheduleChange(slug=planned.slug, status=status, fields=fields, active=existing.active))
    planned_jobs = {schedule_job_id(s.slug) for s in spec.schedules}
    for existing in left_over:
        job_id = schedule_job_id(existing.slug)
        if job_id in planned_jobs:
            # A planned job keeps exactly one schedule (the matched one): a second one, such as the `job-<id>` that
            # `prefect deploy` of a file with the new slug leaves beside it, would run the job twice once active.
            changes.append(
                ScheduleChange(
                    slug=existing.slug or "",
                    status="removed",
                    active=existing.active,
                    reason=second_schedule_reason(job_id),
                )
            )
            continue
        # An active schedule of ours that the plan lacks is a cut-over job (its dbt Cloud trigger is off, so the
        # live plan no longer schedules it): pruning it would leave the job with no scheduler at all.
        removable = prune and not existing.active
        changes.append(
            ScheduleChange(
                slug=existing.slug or "", status="removed" if removable else "orphaned", active=existing.active
            )
        )
    return ApplyDiff(
        deployment=DeploymentChange(name=name, status="changed" if changed else "unchanged", fields=changed),
        schedules=sorted(changes, key=lambda c: c.slug),
        triggers=_automation_changes(state.triggers, state.wanted_triggers, prune)
        + _duplicate_changes(state.extra_triggers),
        notifications=notifications,
        shadow=shadow,
        shadow_triggers=shadow_triggers,
        guard=guard,
        guard_triggers=guard_triggers,
        server_state=state.digests(),
    )


def compute_diff(
    prefect: PrefectGateway,
    spec: DeploymentSpec,
    schema: dict[str, Any],
    *,
    prune: bool = False,
    shadow_schema: dict[str, Any] | None = None,
    guard_schema: dict[str, Any] | None = None,
) -> ApplyDiff:
    """Compare the description with the Prefect API without changing anything (`shadow_schema`, `guard_schema` as
    in `_diff_of`)."""
    return _diff_of(
        _read_state(prefect, spec), spec, schema, prune=prune, shadow_schema=shadow_schema, guard_schema=guard_schema
    )


def _what_changed(shown: dict[str, str], now: dict[str, str]) -> list[str]:
    """`<object> (added|removed|changed)` for each object whose digest differs between two reads."""
    lines = []
    for key in sorted(shown.keys() | now.keys()):
        if key not in now:
            lines.append(f"{key} (gone)")
        elif key not in shown:
            lines.append(f"{key} (new)")
        elif shown[key] != now[key]:
            lines.append(f"{key} (changed)")
    return lines


def check_shown(shown: ApplyDiff, now: ApplyDiff) -> None:
    """Refuse to write unless the diff computed now is the diff that was shown, from the same server state.

    Raises:
        ApplyError: the Prefect API changed since the shown diff was read (the message names what changed), or
            the description or the options did; nothing has been written.
    """
    changed = _what_changed(shown.server_state, now.server_state)
    if changed:
        raise ApplyError(
            f"the Prefect API changed since the diff was shown: {', '.join(changed)}; nothing was written. Run "
            "apply again to see the new diff (another apply, a cutover or a person changed the deployment)"
        )
    if now.model_copy(update={"applied": False}) != shown.model_copy(update={"applied": False}):
        raise ApplyError(
            "the diff computed now is not the diff that was shown, though the Prefect API is unchanged: the plan, "
            "the deployment description or the options (--prune) differ; nothing was written. Run apply again to "
            "see the new diff"
        )


def _ensure_pool(prefect: PrefectGateway, spec: DeploymentSpec, create_pool: bool) -> None:
    pool, kind = spec.work_pool, spec.pool_type
    existing = prefect.read_work_pool(pool)
    if existing is None:
        if not create_pool:
            raise ApplyError(
                f"work pool {pool!r} does not exist on this Prefect API; create it "
                f"(`prefect work-pool create {pool} --type {kind}`), or pass --create-pool"
            )
        existing = prefect.create_work_pool(pool, kind)  # another apply may have created it: check its type
        if existing is None:
            raise ApplyError(
                f"this Prefect API cannot create a {kind!r} work pool ({pool!r}); `prefect:managed` pools exist on "
                "Prefect Cloud only: create the pool there, or set [tenant.runtime] pool_type"
            )
    if existing.type != kind:
        raise ApplyError(
            f"work pool {pool!r} is a {existing.type!r} pool but the tenant's runtime.pool_type is {kind!r}; "
            "set `work_pool` to a pool of that type, or change runtime.pool_type"
        )


def _schedule_create(planned: ScheduleSpec) -> Any:
    from prefect.client.schemas.actions import DeploymentScheduleCreate

    return DeploymentScheduleCreate(
        schedule=_desired_schedule(planned), active=planned.active, parameters=planned.parameters, slug=planned.slug
    )


def _apply_guard(
    prefect: PrefectGateway, spec: DeploymentSpec, schema: dict[str, Any], state: _ServerState, diff: ApplyDiff
) -> None:
    """Write the guard's part of `diff`, computed from `state`, using the objects that read found."""
    if diff.guard is None:
        return
    guard = guard_deployment(spec)
    settings = _deployment_settings(guard, schema)
    if state.guard is None:
        guard_id = prefect.create_deployment(guard.flow_name, guard.name, [], settings)
        wanted = {t.name: (desired_guard_automation(spec, t, guard_id), t.enabled) for t in spec.guard_triggers}
        _apply_automations(prefect, {}, wanted, diff.guard_triggers)
        return
    if diff.guard.status == "changed":
        prefect.update_deployment(state.guard.id, settings)
    _apply_automations(prefect, state.guard_triggers, state.wanted_guard_triggers, diff.guard_triggers)


def _write(
    prefect: PrefectGateway,
    spec: DeploymentSpec,
    schema: dict[str, Any],
    state: _ServerState,
    diff: ApplyDiff,
    *,
    create_pool: bool,
    shadow_schema: dict[str, Any] | None = None,
    guard_schema: dict[str, Any] | None = None,
) -> ApplyDiff:
    """Write `diff`, computed from `state`, using the objects that read found."""
    _ensure_pool(prefect, spec, create_pool)
    _write_shadow(prefect, spec, shadow_schema, state, diff)
    _apply_guard(prefect, spec, guard_schema or {}, state, diff)
    by_slug = {s.slug: s for s in spec.schedules}
    settings = _deployment_settings(spec, schema)
    notifications = (state.notifications, state.wanted_notifications)
    if state.deployment is None:
        creates = [_schedule_create(s) for s in spec.schedules]
        deployment_id = prefect.create_deployment(spec.flow_name, spec.name, creates, settings)
        _apply_automations(prefect, *_triggers(prefect, spec, deployment_id), diff.triggers)
        _apply_automations(prefect, *notifications, diff.notifications)
        _remove_duplicates(prefect, spec, deployment_id)
        return diff.model_copy(update={"applied": True})
    deployment_id = state.deployment.id
    if diff.deployment.status == "changed":
        prefect.update_deployment(deployment_id, settings)
    current = state.schedules
    matched, _ = match_schedules(list(current.values()), spec.schedules)
    for change in diff.schedules:
        if change.status == "added":
            prefect.create_schedules(deployment_id, [_schedule_create(by_slug[change.slug])])
        elif change.status == "changed":
            planned = by_slug[change.slug]
            prefect.update_schedule(
                deployment_id,
                matched[change.slug].id,
                schedule=_desired_schedule(planned),
                parameters=planned.parameters,
                slug=planned.slug,
            )
        elif change.status == "removed":
            prefect.delete_schedule(deployment_id, current[change.slug].id)
    _apply_automations(prefect, state.triggers, state.wanted_triggers, diff.triggers)
    _apply_automations(prefect, *notifications, diff.notifications)
    _remove_duplicates(prefect, spec, deployment_id)
    return diff.model_copy(update={"applied": True})


def _apply(
    prefect: PrefectGateway,
    spec: DeploymentSpec,
    schema: dict[str, Any],
    *,
    prune: bool,
    create_pool: bool,
    dry_run: bool,
    shown: ApplyDiff | None,
    shadow_schema: dict[str, Any] | None = None,
    guard_schema: dict[str, Any] | None = None,
) -> ApplyDiff:
    state = _read_state(prefect, spec)
    diff = _diff_of(state, spec, schema, prune=prune, shadow_schema=shadow_schema, guard_schema=guard_schema)
    if shown is not None:
        check_shown(shown, diff)
    if dry_run or not diff.has_changes:
        return diff
    return _write(
        prefect,
        spec,
        schema,
        state,
        diff,
        create_pool=create_pool,
        shadow_schema=shadow_schema,
        guard_schema=guard_schema,
    )


def apply_deployment(
    spec: DeploymentSpec,
    *,
    prune: bool = False,
    create_pool: bool = False,
    dry_run: bool = False,
    parameter_schema: dict[str, Any] | None = None,
    prefect: PrefectGateway | None = None,
    shown: ApplyDiff | None = None,
) -> ApplyDiff:
    """Create or update the deployment and its schedules through the Prefect API.

    Args:
        spec: the deployment description; new schedules start with its active flags (the ledger's), existing
            ones keep theirs.
        prune: delete inactive schedules of jobs (slug `job-<id>...`) the plan no longer has (default: report them as orphaned).
            Active ones (cut-over jobs) are never pruned: roll the job back first.
        create_pool: create the work pool (of the tenant's pool type) when it does not exist.
        dry_run: only compute the diff.
        parameter_schema: the flow's parameter schema; loaded from the entrypoint when None.
        prefect: the Prefect API; default: `connect_prefect()` (PREFECT_API_URL) for this call.
        shown: the diff a person was shown (a `dry_run` result): write exactly it, or nothing. The API is read
            again and the write refused unless that read gives the same server state (`server_state`) and so the
            same diff.

    Returns:
        The diff, with `applied` True when changes were written.

    Raises:
        ApplyError: the work pool is missing (and create_pool is False), the flow cannot be loaded, the repository
            is the placeholder, a store is a local folder on a pool whose runs are containers, a notification
            template would be refused, or the API changed since `shown` was read; nothing is changed.
        PrefectApiError: the Prefect API failed.
    """
    problem = placeholder_problem(spec) or local_store_problem(spec) or template_problem(spec)
    if problem is not None:
        raise ApplyError(problem)
    schema = parameter_schema if parameter_schema is not None else flow_parameter_schema(spec.entrypoint)
    shadow_schema = flow_parameter_schema(SHADOW_ENTRYPOINT) if spec.shadow_trigger is not None else None
    guard_schema = flow_parameter_schema(GUARD_ENTRYPOINT) if spec.guard_triggers else None
    with gateway_or_connect(prefect) as gateway:
        return _apply(
            gateway,
            spec,
            schema,
            prune=prune,
            create_pool=create_pool,
            dry_run=dry_run,
            shown=shown,
            shadow_schema=shadow_schema,
            guard_schema=guard_schema,
        )


def _notifications_diff(
    state: _ServerState, spec: DeploymentSpec, *, prune: bool, guard_schema: dict[str, Any] | None
) -> ApplyDiff:
    changes = _automation_changes(state.notifications, state.wanted_notifications, prune)
    guard, guard_triggers = _guard_diff(state, spec, guard_schema or {})
    return ApplyDiff(
        deployment=DeploymentChange(name=spec.full_name, status="unchanged"),
        schedules=[],
        notifications=changes + _duplicate_changes(state.extra_notifications),
        guard=guard,
        guard_triggers=guard_triggers,
        automations_only=True,
        server_state=state.digests(),
    )


def _apply_notifications(
    prefect: PrefectGateway,
    spec: DeploymentSpec,
    *,
    prune: bool,
    dry_run: bool,
    shown: ApplyDiff | None,
    guard_schema: dict[str, Any] | None = None,
) -> ApplyDiff:
    state = _read_state(prefect, spec, automations_only=True)
    diff = _notifications_diff(state, spec, prune=prune, guard_schema=guard_schema)
    if shown is not None:
        check_shown(shown, diff)
    if dry_run or not diff.has_changes:
        return diff
    _apply_guard(prefect, spec, guard_schema or {}, state, diff)
    _apply_automations(prefect, state.notifications, state.wanted_notifications, diff.notifications)
    _remove_duplicates(prefect, spec, None)
    return diff.model_copy(update={"applied": True})


def apply_notifications(
    spec: DeploymentSpec,
    *,
    prune: bool = False,
    dry_run: bool = False,
    prefect: PrefectGateway | None = None,
    shown: ApplyDiff | None = None,
) -> ApplyDiff:
    """Create or update only the notification automations, and the guard's deployment and triggers: what `prefect
    deploy` of prefect.yaml does not create (prefect.yaml carries the deployment, its schedules and its triggers).
    Idempotent, as `apply_deployment`; `shown` as there.

    Raises:
        ApplyError: a notification block is missing or cannot notify, a template would be refused, or the API
            changed since `shown` was read; nothing is changed.
        PrefectApiError: the Prefect API failed.
    """
    problem = template_problem(spec)
    if problem is not None:
        raise ApplyError(problem)
    guard_schema = flow_parameter_schema(GUARD_ENTRYPOINT) if spec.guard_triggers else None
    with gateway_or_connect(prefect) as gateway:
        return _apply_notifications(gateway, spec, prune=prune, dry_run=dry_run, shown=shown, guard_schema=guard_schema)
