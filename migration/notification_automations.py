"""The deployment's notification automations on the Prefect API: found by name, their blocks resolved by name.

A notification automation (`job-<id>-notify-<setting id>`, see `migration.notifications`) is not owned by the
deployment: Prefect's deployment triggers can only run deployments. It is ours when its name has that form and its
trigger watches runs of this deployment (`match_related` names it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from uuid import UUID

from dbt2prefect.names import is_notification_name
from dbt2prefect.prefect_gateway import PrefectGateway
from migration.deployment import DeploymentSpec, NotificationSpec
from migration.errors import ApplyError

if TYPE_CHECKING:
    from prefect.events.schemas.automations import Automation, AutomationCore


def watches(automation: Automation, deployment_name: str) -> bool:
    """True when the automation's trigger follows runs of deployment `deployment_name` (its `match_related`)."""
    related = automation.trigger.model_dump(mode="json").get("match_related") or []
    for spec in related if isinstance(related, list) else [related]:
        if spec.get("prefect.resource.role") == "deployment" and spec.get("prefect.resource.name") == deployment_name:
            return True
    return False


def one_per_name(found: Iterable[Automation]) -> tuple[dict[str, Automation], list[Automation]]:
    """The automation kept under each name, and the duplicates beside it (two applies at once each create one).

    The kept one is an enabled one if any is (cutover switched it), then the lowest id: every apply that looks
    picks the same one, so concurrent applies converge on it.
    """
    groups: dict[str, list[Automation]] = {}
    for automation in found:
        groups.setdefault(automation.name, []).append(automation)
    kept: dict[str, Automation] = {}
    extras: list[Automation] = []
    for name, group in groups.items():
        first, *rest = sorted(group, key=lambda a: (not a.enabled, str(a.id)))
        kept[name] = first
        extras += rest
    return kept, extras


def all_notification_automations(prefect: PrefectGateway, deployment_name: str) -> list[Automation]:
    """Every automation named `job-<id>-notify-<id>` that watches runs of deployment `deployment_name`."""
    found = prefect.read_automations()
    return [a for a in found if is_notification_name(a.name) and watches(a, deployment_name)]


def notification_automations(prefect: PrefectGateway, deployment_name: str) -> dict[str, Automation]:
    """The automations named `job-<id>-notify-<id>` that watch runs of deployment `deployment_name`, by name
    (one per name: see `one_per_name`)."""
    return one_per_name(all_notification_automations(prefect, deployment_name))[0]


def block_problem(prefect: PrefectGateway, reference: str) -> tuple[UUID | None, str | None]:
    """The block document id of notification block `reference` (`<slug>/<name>`), or what is wrong with it."""
    slug, _, name = reference.partition("/")
    document = prefect.read_block(slug, name)
    if document is None:
        return None, (
            f"notification block {reference!r} does not exist on this Prefect API; save it first "
            f"(`prefect block create {slug}`, name {name!r}) or name an existing block in [tenant.notifications]"
        )
    if "notify" not in document.capabilities:
        return None, (
            f"block {reference!r} cannot send notifications (a {slug!r} block has no notify capability); name a "
            "notification block in [tenant.notifications], e.g. 'slack-webhook/<name>' or 'custom-webhook/<name>'"
        )
    return document.id, None


def notification_blocks(prefect: PrefectGateway, spec: DeploymentSpec) -> dict[str, UUID]:
    """The block document id of each notification block the description sends through.

    Raises:
        ApplyError: a block does not exist, or cannot send notifications; the message says how to fix it.
    """
    ids: dict[str, UUID] = {}
    for reference in sorted({n.block for n in spec.notifications}):
        block_id, problem = block_problem(prefect, reference)
        if block_id is None:
            users = ", ".join(sorted(n.name for n in spec.notifications if n.block == reference))
            raise ApplyError(f"{problem} (it sends {users})")
        ids[reference] = block_id
    return ids


def template_problem(spec: DeploymentSpec) -> str | None:
    """What Prefect would refuse in the notification automations' subjects and bodies (their Jinja templates),
    checked with Prefect's own template validator before anything is applied, else None."""
    from jinja2 import TemplateError
    from prefect.server.utilities.user_templates import TemplateSecurityError, validate_user_template

    for notification in spec.notifications:
        for field, template in (("subject", notification.subject), ("body", notification.body)):
            try:
                validate_user_template(template)
            except (TemplateError, TemplateSecurityError) as exc:
                return (
                    f"the {field} of notification automation {notification.name} is not a template Prefect accepts "
                    f"({exc}); nothing was changed. Rename the job or destination in dbt Cloud, or drop its line from "
                    "[tenant.notifications], and plan again"
                )
    return None


def desired_notification(spec: DeploymentSpec, notification: NotificationSpec, block_id: UUID) -> AutomationCore:
    """The automation of one notification, sending through the block document `block_id`."""
    from prefect.events.schemas.automations import AutomationCore

    return AutomationCore.model_validate(notification.automation(spec.name, str(block_id)))
