"""Node-level checks: node counts per resource type, executed node sets, statuses; each difference explained.

Known causes recognised:
- configs branching on `target.name` (a node enabled in one manifest and disabled in the other); proven by the
  candidate project parsed under the baseline's target name when that parse is available,
- configs reading `env_var()`,
- nodes disabled or absent on one side (project drift),
- a selection that resolves differently, and nodes the run did not execute,
- nodes skipped after an upstream failure.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from parity.artifacts import Manifest, ManifestNode, RunResults
from parity.model import Check, Finding, NodeCountRow, NodeSetRow, Reason, Severity, StatusRow
from parity.settings import ParitySettings

_ENV_VAR_RE = re.compile(r"env_var\(\s*['\"]([^'\"]+)['\"]")
_TARGET_RE = re.compile(r"\btarget\.(name|schema|database|profile_name)\b")
_GOOD = frozenset({"success", "pass"})
_FAILED = frozenset({"error", "fail", "runtime error"})


@dataclass(frozen=True)
class SelectionContext:
    """What the candidate project says about the job's selection (None where it could not be resolved)."""

    selected: frozenset[str] | None = None
    enabled_under_baseline_target: frozenset[str] | None = None
    baseline_target: str | None = None
    candidate_target: str | None = None


@dataclass(frozen=True)
class Cause:
    reason: Reason
    subject: str
    explanation: str

    @property
    def severity(self) -> Severity:
        # A target-dependent config is the intended effect of running on a separate parity target.
        return Severity.EXPLAINED if self.reason is Reason.TARGET_DEPENDENT_CONFIG else Severity.ERROR


def _resource_type(unique_id: str, *nodes: ManifestNode | None) -> str:
    for node in nodes:
        if node is not None:
            return node.resource_type
    return unique_id.split(".", 1)[0]


class Explainer:
    """Finds why a node is enabled on one side and not the other."""

    def __init__(self, baseline: Manifest, candidate: Manifest, context: SelectionContext) -> None:
        self.baseline = baseline
        self.candidate = candidate
        self.context = context

    def _target_words(self) -> str:
        base = self.context.baseline_target or "the baseline target"
        cand = self.context.candidate_target or "the candidate target"
        return f"target.name {base!r} (baseline) vs {cand!r} (candidate)"

    def _config_cause(self, node: ManifestNode, disabled_side: str, flips: bool | None) -> Cause:
        where = node.original_file_path or node.unique_id
        if flips:
            return Cause(
                Reason.TARGET_DEPENDENT_CONFIG,
                node.unique_id,
                f"{node.unique_id} is disabled in the {disabled_side} because its config depends on the target: "
                f"{self._target_words()}; confirmed by parsing the candidate project under the baseline's target "
                f"(config in {where}). Expected when parity runs on its own target.",
            )
        env_vars = sorted(set(_ENV_VAR_RE.findall(node.raw_code)))
        if env_vars:
            return Cause(
                Reason.ENV_VAR_DEPENDENT_CONFIG,
                node.unique_id,
                f"{node.unique_id} is disabled in the {disabled_side}; {where} reads env_var "
                f"{', '.join(env_vars)}. Give the Prefect deployment the same values as the dbt Cloud environment.",
            )
        if flips is None and _TARGET_RE.search(node.raw_code):
            return Cause(
                Reason.TARGET_DEPENDENT_CONFIG,
                node.unique_id,
                f"{node.unique_id} is disabled in the {disabled_side}; {where} branches on the target "
                f"({self._target_words()}). Expected when parity runs on its own target.",
            )
        return Cause(
            Reason.DISABLED_IN_CANDIDATE if disabled_side == "candidate" else Reason.DISABLED_IN_BASELINE,
            node.unique_id,
            f"{node.unique_id} is disabled in the {disabled_side} manifest (enabled: false in {where} or "
            "dbt_project.yml); the projects differ.",
        )

    def absent_in_candidate(self, unique_id: str) -> Cause | None:
        """Why a node enabled in the baseline is not enabled in the candidate manifest (None if it is)."""
        if unique_id in self.candidate.nodes:
            return None
        disabled = self.candidate.disabled_node(unique_id)
        if disabled is not None:
            under_base = self.context.enabled_under_baseline_target
            flips = None if under_base is None else unique_id in under_base
            return self._config_cause(disabled, "candidate", flips)
        return Cause(
            Reason.NOT_IN_CANDIDATE_PROJECT,
            unique_id,
            f"{unique_id} does not exist in the candidate project: it was removed or renamed since the baseline run.",
        )

    def absent_in_baseline(self, unique_id: str) -> Cause | None:
        """Why a node enabled in the candidate is not enabled in the baseline manifest (None if it is)."""
        if unique_id in self.baseline.nodes:
            return None
        disabled = self.baseline.disabled_node(unique_id)
        if disabled is not None:
            under_base = self.context.enabled_under_baseline_target
            flips = None if under_base is None else unique_id not in under_base
            return self._config_cause(disabled, "baseline", flips)
        return Cause(
            Reason.NOT_IN_BASELINE_PROJECT,
            unique_id,
            f"{unique_id} is new in the candidate project: the baseline run predates it; take a newer baseline.",
        )


def _accept(settings: ParitySettings, reason: str, subject: str, severity: Severity) -> Severity:
    if severity is Severity.ERROR and settings.is_accepted(reason, subject):
        return Severity.EXPLAINED
    return severity


def compare_node_counts(
    baseline: Manifest, candidate: Manifest, explainer: Explainer, settings: ParitySettings
) -> tuple[list[NodeCountRow], list[Finding]]:
    """Enabled nodes per resource type on both sides; every delta explained node by node."""
    base_counts, cand_counts = baseline.counts(), candidate.counts()
    base_disabled, cand_disabled = baseline.disabled_counts(), candidate.disabled_counts()
    rows: list[NodeCountRow] = []
    findings: list[Finding] = []
    for resource_type in sorted(set(base_counts) | set(cand_counts)):
        b, c = base_counts[resource_type], cand_counts[resource_type]
        rows.append(
            NodeCountRow(
                resource_type=resource_type,
                baseline=b,
                candidate=c,
                delta=c - b,
                baseline_disabled=base_disabled[resource_type],
                candidate_disabled=cand_disabled[resource_type],
            )
        )
        if b == c and _same_ids(baseline, candidate, resource_type):
            continue
        causes = _count_causes(baseline, candidate, explainer, resource_type)
        reasons = Counter(cause.reason.value for cause in causes)
        severity = Severity.EXPLAINED
        for cause in causes:
            if _accept(settings, cause.reason.value, cause.subject, cause.severity) is Severity.ERROR:
                severity = Severity.ERROR
        detail = "; ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        findings.append(
            Finding(
                check=Check.NODE_COUNTS,
                reason=Reason.NODE_COUNT_DIFFERS.value,
                severity=severity,
                subject=resource_type,
                message=f"{resource_type}: {b} enabled in the baseline, {c} in the candidate ({detail})",
                explanation=" ".join(cause.explanation for cause in causes[:5])
                + (f" (+{len(causes) - 5} more)" if len(causes) > 5 else ""),
            )
        )
    return rows, findings


def _same_ids(baseline: Manifest, candidate: Manifest, resource_type: str) -> bool:
    return _ids_of(baseline, resource_type) == _ids_of(candidate, resource_type)


def _ids_of(manifest: Manifest, resource_type: str) -> set[str]:
    return {uid for uid, node in manifest.counted().items() if node.resource_type == resource_type}


def _count_causes(baseline: Manifest, candidate: Manifest, explainer: Explainer, resource_type: str) -> list[Cause]:
    base_ids, cand_ids = _ids_of(baseline, resource_type), _ids_of(candidate, resource_type)
    causes = [explainer.absent_in_candidate(uid) for uid in sorted(base_ids - cand_ids)]
    causes += [explainer.absent_in_baseline(uid) for uid in sorted(cand_ids - base_ids)]
    return [cause for cause in causes if cause is not None]


@dataclass(frozen=True)
class NodeSetResult:
    rows: list[NodeSetRow]
    findings: list[Finding]
    matched: int


def compare_node_sets(
    baseline_run: RunResults,
    candidate_run: RunResults,
    explainer: Explainer,
    settings: ParitySettings,
) -> NodeSetResult:
    """Nodes the baseline executed vs what the job selects on the candidate project and what the candidate ran."""
    baseline_ids = frozenset(result.unique_id for result in baseline_run.results)
    candidate_ids = frozenset(result.unique_id for result in candidate_run.results)
    selected = explainer.context.selected
    rows: list[NodeSetRow] = []
    findings: list[Finding] = []

    def add(uid: str, difference: str, compared: str, reason: Reason, explanation: str, severity: Severity) -> None:
        base_node, cand_node = explainer.baseline.get(uid), explainer.candidate.get(uid)
        row = NodeSetRow(
            unique_id=uid,
            resource_type=_resource_type(uid, base_node, cand_node),
            difference=difference,
            compared=compared,
            reason=reason.value,
            explanation=explanation,
        )
        rows.append(row)
        side = "the baseline only" if difference == "missing" else "the candidate only"
        findings.append(
            Finding(
                check=Check.NODE_SETS,
                reason=reason.value,
                severity=_accept(settings, reason.value, uid, severity),
                subject=uid,
                message=f"{uid} is in {side} ({compared.replace('_', ' ')})",
                explanation=explanation,
            )
        )

    reference = selected if selected is not None else candidate_ids
    compared = "baseline_vs_selection" if selected is not None else "baseline_vs_run"
    if selected is None:
        findings.append(
            Finding(
                check=Check.NODE_SETS,
                reason=Reason.SELECTION_NOT_RESOLVED.value,
                severity=Severity.INFO,
                subject="selection",
                message="the job's selection was not resolved on the candidate project; compared executed nodes only",
            )
        )
    for uid in sorted(baseline_ids - reference):
        cause = explainer.absent_in_candidate(uid)
        if cause is not None:
            add(uid, "missing", compared, cause.reason, cause.explanation, cause.severity)
        elif selected is not None:
            add(
                uid,
                "missing",
                compared,
                Reason.SELECTION_DIFFERS,
                f"{uid} is enabled in the candidate project but the job's selection does not select it there; "
                "compare the job's --select/--exclude/--selector with the dbt Cloud job's step.",
                Severity.ERROR,
            )
        else:
            add(
                uid,
                "missing",
                compared,
                Reason.NOT_EXECUTED_IN_CANDIDATE,
                f"{uid} is enabled in the candidate project but the candidate run did not execute it.",
                Severity.ERROR,
            )
    for uid in sorted(reference - baseline_ids):
        cause = explainer.absent_in_baseline(uid)
        if cause is not None:
            add(uid, "extra", compared, cause.reason, cause.explanation, cause.severity)
        else:
            add(
                uid,
                "extra",
                compared,
                Reason.NOT_EXECUTED_IN_BASELINE,
                f"{uid} was enabled in the baseline project but the dbt Cloud run did not execute it "
                "(different selection, or state-aware orchestration reused it).",
                Severity.ERROR,
            )
    if selected is not None:
        for uid in sorted(selected - candidate_ids):
            add(
                uid,
                "missing",
                "selection_vs_run",
                Reason.SELECTED_NOT_EXECUTED,
                f"the job selects {uid} on the candidate project but the candidate run did not execute it "
                "(parameters differ from the translated job, or the run stopped early).",
                Severity.ERROR,
            )
        for uid in sorted(candidate_ids - selected):
            add(
                uid,
                "extra",
                "selection_vs_run",
                Reason.EXECUTED_NOT_SELECTED,
                f"the candidate run executed {uid} which the job's selection does not select "
                "(the run's parameters differ from the translated job).",
                Severity.ERROR,
            )
    return NodeSetResult(rows=rows, findings=findings, matched=len(baseline_ids & candidate_ids))


def _failed_ancestors(uid: str, manifest: Manifest, statuses: dict[str, str]) -> list[str]:
    seen: set[str] = set()
    stack = list(_parents(uid, manifest))
    failed: list[str] = []
    while stack:
        parent = stack.pop()
        if parent in seen:
            continue
        seen.add(parent)
        if statuses.get(parent) in _FAILED:
            failed.append(parent)
        else:
            stack.extend(_parents(parent, manifest))
    return sorted(failed)


def _parents(uid: str, manifest: Manifest) -> Iterable[str]:
    node = manifest.get(uid)
    return node.depends_on.nodes if node is not None else ()


@dataclass(frozen=True)
class StatusResult:
    rows: list[StatusRow]
    findings: list[Finding]
    matched: int


def compare_statuses(
    baseline_run: RunResults,
    candidate_run: RunResults,
    baseline_manifest: Manifest,
    candidate_manifest: Manifest,
    settings: ParitySettings,
) -> StatusResult:
    """Status per node executed on both sides; a skip is traced to the upstream failure that caused it."""
    base_status = {result.unique_id: result.status for result in baseline_run.results}
    cand_status = {result.unique_id: result.status for result in candidate_run.results}
    rows: list[StatusRow] = []
    findings: list[Finding] = []
    matched = 0
    for uid in sorted(set(base_status) & set(cand_status)):
        b, c = base_status[uid], cand_status[uid]
        if b == c:
            matched += 1
            continue
        reason, severity, explanation = _status_cause(
            uid, b, c, baseline_manifest, candidate_manifest, base_status, cand_status
        )
        rows.append(
            StatusRow(
                unique_id=uid,
                resource_type=_resource_type(uid, candidate_manifest.get(uid), baseline_manifest.get(uid)),
                baseline_status=b,
                candidate_status=c,
                reason=reason.value,
                explanation=explanation,
            )
        )
        findings.append(
            Finding(
                check=Check.STATUSES,
                reason=reason.value,
                severity=_accept(settings, reason.value, uid, severity),
                subject=uid,
                message=f"{uid}: {b} in the baseline, {c} in the candidate",
                explanation=explanation,
            )
        )
    return StatusResult(rows=rows, findings=findings, matched=matched)


def _status_cause(
    uid: str,
    b: str,
    c: str,
    baseline_manifest: Manifest,
    candidate_manifest: Manifest,
    base_status: dict[str, str],
    cand_status: dict[str, str],
) -> tuple[Reason, Severity, str | None]:
    if c == "skipped":
        failed = _failed_ancestors(uid, candidate_manifest, cand_status)
        if failed:
            return (
                Reason.SKIPPED_AFTER_UPSTREAM_FAILURE,
                Severity.ERROR,
                f"skipped in the candidate because upstream {', '.join(failed[:3])} failed; fix that node first.",
            )
    if b == "skipped":
        failed = _failed_ancestors(uid, baseline_manifest, base_status)
        if failed and c in _GOOD:
            return (
                Reason.STATUS_IMPROVED,
                Severity.INFO,
                f"skipped in the baseline because upstream {', '.join(failed[:3])} failed there; the candidate ran it.",
            )
    if c in _GOOD and b not in _GOOD:
        return Reason.STATUS_IMPROVED, Severity.INFO, f"{b} in the baseline run, {c} in the candidate run."
    return Reason.STATUS_CHANGED, Severity.ERROR, None
