"""buildyard conditions as GitLab rules: each translation is evaluated by the GitLab importer's own
``rules:if`` evaluator and must decide like buildyard's evaluator, for every trigger."""

from __future__ import annotations

import pytest

from buildyard.exporters import conditions
from buildyard.exporters.conditions import Untranslatable
from buildyard.importers.gitlab_rules import check_if
from buildyard.spec.expr import ExprError, evaluate

TRIGGERS = [
    {"event": "push", "branch": "main", "tag": None},
    {"event": "push", "branch": "release/1.2", "tag": None},
    {"event": "push", "branch": "feature/x.y", "tag": None},
    {"event": "tag", "branch": None, "tag": "v1.2.3"},
    {"event": "pull_request", "branch": "topic", "tag": None},
    {"event": "schedule", "branch": "main", "tag": None},
    {"event": "manual", "branch": "dev", "tag": None},
]
EXPRESSIONS = [
    "branch == 'main'",
    "branch != 'main'",
    "event == 'push' && branch == 'main'",
    "event == 'tag'",
    "event != 'push'",
    "!(event == 'pull_request' || event == 'schedule')",
    "tag",
    "!tag",
    "tag != null",
    "branch.startsWith('release/')",
    "!branch.startsWith('release/') && event == 'push'",
    "branch.endsWith('.y')",
    "branch.contains('x.')",
    "tag.matches('^v[0-9]+[.]')",
    "vars.DEPLOY == 'yes' || branch == 'main'",
    "(event == 'push' || event == 'manual') && !(branch == 'dev')",
    "sha != null",
]


def _buildyard(trigger: dict[str, str | None], variables: dict[str, str]) -> dict[str, object]:
    ref = f"refs/tags/{trigger['tag']}" if trigger["tag"] else f"refs/heads/{trigger['branch']}"
    return {**trigger, "ref": ref, "sha": "abc123", "vars": variables, "env": {}, "matrix": {}}


def _gitlab(trigger: dict[str, str | None], variables: dict[str, str]) -> dict[str, str]:
    source = conditions.GITLAB_SOURCES[str(trigger["event"])]
    out = {"CI_PIPELINE_SOURCE": source, "CI_COMMIT_SHA": "abc123", **variables}
    if trigger["tag"]:
        out["CI_COMMIT_TAG"] = str(trigger["tag"])
        out["CI_COMMIT_REF_NAME"] = str(trigger["tag"])
    elif trigger["branch"]:
        out["CI_COMMIT_BRANCH"] = str(trigger["branch"])
        out["CI_COMMIT_REF_NAME"] = str(trigger["branch"])
    return out


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_gitlab_rule_decides_as_buildyard_for_every_trigger(expression: str) -> None:
    rule = conditions.to_gitlab(expression)
    for trigger in TRIGGERS:
        for variables in ({}, {"DEPLOY": "yes"}):
            context = _buildyard(trigger, variables)
            try:
                wanted = bool(evaluate(expression, context))  # truthiness: a bare name is a test
            except ExprError:
                continue  # a method on null: buildyard reports an error, it decides nothing
            got = check_if(rule, _gitlab(trigger, variables))
            assert got == wanted, (expression, rule, trigger, variables)


@pytest.mark.parametrize(
    "expression",
    ["needs.build.status == 'success'", "matrix.os == 'linux'", "size(branch) > 3", "branch in ['a']"],
)
def test_runtime_and_unknown_constructs_are_untranslatable(expression: str) -> None:
    with pytest.raises(Untranslatable):
        conditions.to_gitlab(expression)
    with pytest.raises(Untranslatable):
        conditions.to_github(expression)


def test_github_translation_uses_github_contexts_and_variable_defaults() -> None:
    assert (
        conditions.to_github("event == 'tag'") == "(github.event_name == 'push' && github.ref_type == 'tag')"
    )
    assert conditions.to_github("vars.DEPLOY == 'it''s'", {"DEPLOY": "no"}) == (
        "(vars.DEPLOY || 'no') == 'it''s'"
    )
    assert conditions.to_github("!branch.startsWith('release/')") == (
        "!(startsWith((github.head_ref || (github.ref_type == 'branch' && github.ref_name || '')), "
        "'release/'))"
    )
    with pytest.raises(Untranslatable):
        conditions.to_github("branch.matches('^r')")
    with pytest.raises(Untranslatable):  # GitHub decides a job before any runner environment exists
        conditions.to_github("env.HOME == '/'")


def test_interpolations() -> None:
    assert conditions.interpolate_gitlab("t_${{ matrix.suite }}/${{ vars.V }}@${{ sha }}") == (
        "t_${suite}/${V}@${CI_COMMIT_SHA}"
    )
    assert conditions.interpolate_github("t_${{ matrix.suite }}/${{ vars.V }}") == (
        "t_${{ matrix.suite }}/${{ env.V }}"
    )
    with pytest.raises(Untranslatable):
        conditions.interpolate_gitlab("${{ needs.a.outputs.x }}")
