"""plan.build: matrix expansion, stage and needs edges, conditions, selection, priorities."""

from __future__ import annotations

import pytest

from buildyard.errors import SpecError, UsageError
from buildyard.model import Event, SkipReason
from buildyard.plan.build import TriggerContext, build
from buildyard.spec.load import loads

STAGED = """
stages: [build, test, deploy]
jobs:
  compile: {stage: build, script: make}
  docs: {stage: build, script: docs}
  unit: {stage: test, script: test}
  lint: {stage: test, needs: [], script: lint}
  e2e: {stage: test, needs: [compile], script: e2e}
  ship: {stage: deploy, script: ship}
"""


def test_stage_semantics_without_needs_wait_for_all_earlier_stages() -> None:
    plan = build(loads(STAGED), TriggerContext())
    assert set(plan.instances["unit"].needs) == {"compile", "docs"}
    assert plan.instances["lint"].needs == ()  # needs: [] means none
    assert plan.instances["e2e"].needs == ("compile",)
    assert set(plan.instances["ship"].needs) == {"compile", "docs", "unit", "lint", "e2e"}


def test_unstaged_jobs_without_needs_have_no_dependencies() -> None:
    plan = build(loads("jobs:\n  a: {script: x}\n  b: {script: y}\n"), TriggerContext())
    assert all(i.needs == () for i in plan.instances.values())


def test_gitlab_default_stages_when_jobs_name_one() -> None:
    plan = build(loads("jobs:\n  a: {stage: build, script: x}\n  b: {script: y}\n"), TriggerContext())
    assert plan.instances["b"].stage == "test" and plan.instances["b"].needs == ("a",)


def test_matrix_expansion_include_exclude_and_interpolation() -> None:
    text = """
jobs:
  build: {script: make}
  test:
    needs: [build]
    matrix:
      python: ["3.11", "3.12"]
      os: [linux, mac]
      exclude: [{python: "3.11", os: mac}]
      include: [{python: "3.12", os: linux, extra: big}, {python: "3.13", os: win}]
    env: {PY: "${{ matrix.python }}"}
    script: ["run --py ${{ matrix.python }} --os ${{ matrix.os }}"]
  report: {needs: [test], script: report}
"""
    plan = build(loads(text), TriggerContext())
    tests = [i for i in plan.instances.values() if i.job == "test"]
    assert [t.id for t in tests] == [
        "test[3.11,linux]",
        "test[3.12,linux,big]",
        "test[3.12,mac]",
        "test[3.13,win]",
    ]
    assert tests[0].steps[0].run == "run --py 3.11 --os linux"
    assert dict(tests[3].env) == {"PY": "3.13"}
    assert set(plan.instances["report"].needs) == {t.id for t in tests}


def test_static_conditions_and_manual_jobs() -> None:
    text = """
jobs:
  build: {script: make}
  release: {needs: [build], if: "tag.startsWith('v')", script: release}
  deploy: {needs: [build], when: manual, script: deploy}
  notify: {needs: [build], if: "needs.build.status == 'failed'", when: always, script: notify}
"""
    pipeline = loads(text)
    plan = build(pipeline, TriggerContext(event=Event.PUSH, branch="main"))
    assert plan.skips["release"].reason == SkipReason.CONDITION_FALSE
    assert plan.skips["deploy"].reason == SkipReason.MANUAL
    assert (
        "notify" not in plan.skips and plan.instances["notify"].condition is not None
    )  # decided at run time
    tagged = build(pipeline, TriggerContext(event=Event.TAG, tag="v1.0", manual=frozenset({"deploy"})))
    assert "release" not in tagged.skips and "deploy" not in tagged.skips


def test_selection_keeps_what_selected_jobs_need() -> None:
    plan = build(loads(STAGED), TriggerContext(), select=["e2e"])
    assert set(plan.instances) == {"e2e", "compile"}
    with pytest.raises(UsageError, match="did you mean 'e2e'"):
        build(loads(STAGED), TriggerContext(), select=["e2f"])


def test_selecting_a_manual_job_runs_it() -> None:
    plan = build(loads("jobs:\n  d: {when: manual, script: x}\n"), TriggerContext(), select=["d"])
    assert "d" not in plan.skips


def test_priorities_follow_the_critical_path() -> None:
    text = (
        "jobs:\n  a: {script: x}\n  b: {needs: [a], script: x}\n  c: {needs: [b], script: x}\n"
        "  d: {script: x}\n"
    )
    plan = build(loads(text), TriggerContext(), durations={"d": 10.0})
    assert plan.priority["a"] == 3.0 and plan.priority["c"] == 1.0 and plan.priority["d"] == 10.0


def test_interpolation_errors_are_located() -> None:
    text = "jobs:\n  a:\n    script: ['echo ${{ size(vars.MISSING) }} ${{ vars.MISSING }}']\n"
    with pytest.raises(SpecError, match=r"buildyard.yml:2:3: jobs.a: cannot evaluate"):
        build(loads(text), TriggerContext())  # an unset variable is null: size(null) cannot be evaluated
    plan = build(loads(text), TriggerContext(variables={"MISSING": "here"}))
    assert plan.instances["a"].steps[0].run == "echo 4 here"


def test_a_matrix_of_include_entries_only_makes_one_instance_per_entry() -> None:
    """GitLab's parallel:matrix converts to include-only matrices; every entry is one instance."""
    text = (
        "jobs:\n  d:\n    script: x\n    matrix:\n      include:\n"
        "        - {p: aws, r: eu}\n        - {p: aws, r: us}\n        - {p: gcp, r: eu}\n"
    )
    plan = build(loads(text), TriggerContext())
    assert sorted(plan.instances) == ["d[aws,eu]", "d[aws,us]", "d[gcp,eu]"]


def test_allow_failure_exit_codes_reach_the_instance() -> None:
    text = "jobs:\n  a:\n    script: x\n    allow_failure: {exit_codes: [3, 137]}\n  b: {script: y}\n"
    plan = build(loads(text), TriggerContext())
    assert plan.instances["a"].allow_failure is False
    assert plan.instances["a"].allow_failure_codes == (3, 137)
    assert plan.instances["b"].allow_failure_codes == ()
    with pytest.raises(
        SpecError,
        match=r"^buildyard\.yml:4:34: jobs\.a\.allow_failure\.exit_codes\[0\]: expected int, got str$",
    ):
        loads("jobs:\n  a:\n    script: x\n    allow_failure: {exit_codes: [soon]}\n")
