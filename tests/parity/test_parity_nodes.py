"""Node counts, node sets and statuses on synthetic manifests: every difference carries its cause."""

from __future__ import annotations

from parity import synthetic as syn
from parity.artifacts import parse_manifest, parse_run_results
from parity.model import Reason, Severity
from parity.nodes import Explainer, SelectionContext, compare_node_counts, compare_node_sets, compare_statuses
from parity.settings import ParitySettings

PROD_ONLY = "{{ config(enabled=target.name == 'prod') }} select 1"
STG, FCT, PROD = "model.p.stg", "model.p.fct", "model.p.prod_only"
TEST = "test.p.not_null_fct_id.1"


def _pair(candidate_disabled_code: str = PROD_ONLY):  # type: ignore[no-untyped-def]
    base = parse_manifest(
        syn.manifest(
            [
                syn.node(STG),
                syn.node(FCT, depends_on=[STG]),
                syn.node(PROD, raw_code=PROD_ONLY),
                syn.node(TEST, depends_on=[FCT]),
            ]
        )
    )
    cand = parse_manifest(
        syn.manifest(
            [syn.node(STG), syn.node(FCT, depends_on=[STG]), syn.node(TEST, depends_on=[FCT])],
            disabled=[syn.node(PROD, enabled=False, raw_code=candidate_disabled_code)],
        )
    )
    return base, cand


def test_node_count_delta_from_target_dependent_config_is_explained_not_failed() -> None:
    base, cand = _pair()
    ctx = SelectionContext(
        enabled_under_baseline_target=frozenset({STG, FCT, PROD, TEST}),
        baseline_target="prod",
        candidate_target="parity",
    )
    rows, findings = compare_node_counts(base, cand, Explainer(base, cand, ctx), ParitySettings())
    model_row = next(r for r in rows if r.resource_type == "model")
    assert (model_row.baseline, model_row.candidate, model_row.delta, model_row.candidate_disabled) == (3, 2, -1, 1)
    [finding] = findings
    assert finding.reason == "node_count_differs"
    assert finding.severity is Severity.EXPLAINED
    assert "1 target_dependent_config" in finding.message
    assert "confirmed by parsing the candidate project under the baseline's target" in (finding.explanation or "")


def test_disabled_without_target_branch_fails_as_disabled_in_candidate() -> None:
    base, cand = _pair(candidate_disabled_code="select 1")
    ctx = SelectionContext(enabled_under_baseline_target=frozenset({STG, FCT, TEST}))
    _, findings = compare_node_counts(base, cand, Explainer(base, cand, ctx), ParitySettings())
    assert findings[0].severity is Severity.ERROR
    assert "disabled_in_candidate" in findings[0].message


def test_env_var_config_is_named_with_the_variable() -> None:
    base, cand = _pair(candidate_disabled_code="{{ config(enabled=env_var('WG_ENABLE_FINANCE') == '1') }} select 1")
    cause = Explainer(base, cand, SelectionContext()).absent_in_candidate(PROD)
    assert cause is not None and cause.reason is Reason.ENV_VAR_DEPENDENT_CONFIG
    assert "WG_ENABLE_FINANCE" in cause.explanation


def test_accepted_setting_turns_an_error_into_explained() -> None:
    base, cand = _pair(candidate_disabled_code="select 1")
    settings = ParitySettings(accepted=("disabled_in_candidate:model.p.*",))
    _, findings = compare_node_counts(base, cand, Explainer(base, cand, SelectionContext()), settings)
    assert findings[0].severity is Severity.EXPLAINED


def test_node_sets_compare_baseline_with_resolved_selection_and_the_candidate_run() -> None:
    base, cand = _pair()
    baseline_run = parse_run_results(syn.run_results({STG: "success", FCT: "success", PROD: "success", TEST: "pass"}))
    # The candidate run forgot the test although the job's selection selects it.
    candidate_run = parse_run_results(syn.run_results({STG: "success", FCT: "success"}))
    ctx = SelectionContext(
        selected=frozenset({STG, FCT, TEST}),
        enabled_under_baseline_target=frozenset({STG, FCT, PROD, TEST}),
        baseline_target="prod",
        candidate_target="parity",
    )
    result = compare_node_sets(baseline_run, candidate_run, Explainer(base, cand, ctx), ParitySettings())
    by_reason = {(r.unique_id, r.reason, r.compared) for r in result.rows}
    assert by_reason == {
        (PROD, "target_dependent_config", "baseline_vs_selection"),
        (TEST, "selected_not_executed", "selection_vs_run"),
    }
    severities = {f.subject: f.severity for f in result.findings}
    assert severities == {PROD: Severity.EXPLAINED, TEST: Severity.ERROR}
    assert result.matched == 2


def test_selection_differs_and_new_node_are_errors() -> None:
    base, cand = _pair()
    new = "model.p.brand_new"
    cand = parse_manifest(
        syn.manifest([syn.node(STG), syn.node(FCT, depends_on=[STG]), syn.node(TEST, depends_on=[FCT]), syn.node(new)])
    )
    baseline_run = parse_run_results(syn.run_results({STG: "success", FCT: "success", TEST: "pass"}))
    candidate_run = parse_run_results(syn.run_results({STG: "success", new: "success", TEST: "pass"}))
    ctx = SelectionContext(selected=frozenset({STG, new, TEST}))
    result = compare_node_sets(baseline_run, candidate_run, Explainer(base, cand, ctx), ParitySettings())
    assert {(r.unique_id, r.reason) for r in result.rows} == {
        (FCT, "selection_differs"),
        (new, "not_in_baseline_project"),
    }
    assert all(f.severity is Severity.ERROR for f in result.findings)


def test_without_resolved_selection_the_runs_are_compared_and_that_is_said() -> None:
    base, cand = _pair()
    baseline_run = parse_run_results(syn.run_results({STG: "success", FCT: "success"}))
    candidate_run = parse_run_results(syn.run_results({STG: "success"}))
    result = compare_node_sets(baseline_run, candidate_run, Explainer(base, cand, SelectionContext()), ParitySettings())
    assert [(r.unique_id, r.reason, r.compared) for r in result.rows] == [
        (FCT, "not_executed_in_candidate", "baseline_vs_run")
    ]
    assert any(f.reason == "selection_not_resolved" and f.severity is Severity.INFO for f in result.findings)


def test_skips_are_traced_to_the_upstream_failure() -> None:
    base, cand = _pair()
    baseline_run = parse_run_results(syn.run_results({STG: "success", FCT: "success", TEST: "pass"}))
    candidate_run = parse_run_results(syn.run_results({STG: "error", FCT: "skipped", TEST: "skipped"}))
    result = compare_statuses(baseline_run, candidate_run, base, cand, ParitySettings())
    reasons = {r.unique_id: r.reason for r in result.rows}
    assert reasons == {
        STG: "status_changed",
        FCT: "skipped_after_upstream_failure",
        TEST: "skipped_after_upstream_failure",
    }
    test_row = next(r for r in result.rows if r.unique_id == TEST)
    assert test_row.explanation is not None and STG in test_row.explanation
    assert result.matched == 0


def test_warn_versus_pass_fails_and_a_recovered_node_is_informational() -> None:
    base, cand = _pair()
    baseline_run = parse_run_results(syn.run_results({STG: "error", TEST: "pass"}))
    candidate_run = parse_run_results(syn.run_results({STG: "success", TEST: "warn"}))
    result = compare_statuses(baseline_run, candidate_run, base, cand, ParitySettings())
    severities = {f.subject: (f.reason, f.severity) for f in result.findings}
    assert severities == {STG: ("status_improved", Severity.INFO), TEST: ("status_changed", Severity.ERROR)}
