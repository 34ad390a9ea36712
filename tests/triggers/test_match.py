"""``matches(on, event)``: GitHub's ``on:`` semantics on push, tag and pull request events."""

from __future__ import annotations

import pytest

from buildyard.model import Event
from buildyard.spec import loads
from buildyard.spec.filters import PatternError, compile_pattern, matches_any
from buildyard.spec.models import OnSpec
from buildyard.triggers.events import TriggerEvent
from buildyard.triggers.match import matches


def on(text: str) -> OnSpec:
    spec = loads(f"on:\n{text}\njobs:\n  a: {{script: 'true'}}\n").on
    assert spec is not None
    return spec


def push(branch: str, *changed: str) -> TriggerEvent:
    return TriggerEvent(Event.PUSH, branch=branch, changed_paths=changed)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", "main", True),
        ("*", "feature/x", False),  # * stops at /
        ("**", "feature/x/y", True),
        ("feature/*", "feature/x", True),
        ("feature/*", "feature/x/y", False),
        ("feature/**", "feature/x/y", True),
        ("*.js", "app.js", True),
        ("*.js", "src/app.js", False),
        ("**.js", "src/deep/app.js", True),
        ("docs/**", "docs/a/b.md", True),
        ("v1.?", "v1.", True),  # ? = zero or one of the preceding character (GitHub)
        ("v1?", "v", True),
        ("v1?", "v11", False),
        ("v1+", "v111", True),
        ("v1+", "v", False),
        ("v[0-9].*", "v2.10", True),
        ("v[0-9].*", "va.1", False),
        ("release\\*", "release*", True),
        ("release\\*", "releasex", False),
        ("a.b", "axb", False),  # . is literal
    ],
)
def test_github_glob_semantics(pattern: str, name: str, expected: bool) -> None:
    assert bool(compile_pattern(pattern).fullmatch(name)) is expected


@pytest.mark.parametrize("bad", ["", "a[", "[]", "*+", "x\\", "**?", "[a-z!]"])
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(PatternError):
        compile_pattern(bad)


def test_negation_order_the_last_match_decides() -> None:
    patterns = ["release/**", "!release/**-alpha", "release/1.0-alpha"]
    assert matches_any(patterns, "release/2.0")
    assert not matches_any(patterns, "release/2.0-alpha")
    assert matches_any(patterns, "release/1.0-alpha")  # included again by the later pattern
    assert not matches_any(patterns, "main")


def test_no_on_section_runs_pushes_and_prs_but_no_schedule() -> None:
    assert matches(None, push("main"))
    assert matches(None, TriggerEvent(Event.PULL_REQUEST, branch="f", base_branch="main"))
    assert not matches(None, TriggerEvent(Event.SCHEDULE))


def test_branch_filters() -> None:
    spec = on("  push:\n    branches: [main, 'release/**', '!release/old-*']")
    assert matches(spec, push("main")).triggered
    assert matches(spec, push("release/2.0")).triggered
    verdict = matches(spec, push("release/old-1"))
    assert not verdict.triggered and "matches none of on.push.branches" in verdict.reason
    assert not matches(spec, push("dev"))
    ignore = on("  push:\n    branches_ignore: ['wip/**']")
    assert matches(ignore, push("main"))
    assert "branches_ignore" in matches(ignore, push("wip/x")).reason
    assert not matches(ignore, push("wip/x"))


def test_a_push_touching_only_ignored_paths_starts_nothing_and_says_why() -> None:
    spec = on("  push:\n    paths_ignore: ['docs/**', '**.md']")
    verdict = matches(spec, push("main", "docs/index.md", "README.md"))
    assert not verdict.triggered
    assert verdict.reason == (
        "push to 'main' changes only ignored paths (docs/**, **.md): docs/index.md, README.md"
    )
    assert "\n" not in verdict.reason
    assert matches(spec, push("main", "docs/index.md", "src/app.py")).triggered
    assert matches(spec, TriggerEvent(Event.PUSH, branch="main")).triggered  # paths unknown: run


def test_paths_need_one_selected_change_with_negation() -> None:
    spec = on("  push:\n    paths: ['src/**', '!src/**.md']")
    assert matches(spec, push("main", "src/a.py"))
    assert not matches(spec, push("main", "src/README.md", "docs/x"))
    assert not matches(spec, push("main"))  # no changed file at all


def test_tags_and_branches_as_github_separates_them() -> None:
    branches_only = on("  push:\n    branches: [main]")
    tag = TriggerEvent(Event.TAG, tag="v1.0")
    verdict = matches(branches_only, tag)
    assert not verdict.triggered and "filters only branches" in verdict.reason
    tags_only = on("  push:\n    tags: ['v*']\n    paths: ['src/**']")
    assert matches(tags_only, tag)  # paths are not evaluated for tags
    assert not matches(tags_only, TriggerEvent(Event.TAG, tag="nightly"))
    assert "filters only tags" in matches(tags_only, push("main", "src/a")).reason
    assert matches(on("  push:"), tag)
    assert not matches(on("  push:\n    tags_ignore: ['*-rc*']"), TriggerEvent(Event.TAG, tag="v2-rc1"))


def test_pull_request_branches_are_the_base_branch() -> None:
    spec = on("  pull_request:\n    branches: [main]")
    assert matches(spec, TriggerEvent(Event.PULL_REQUEST, branch="feature/x", base_branch="main"))
    assert not matches(spec, TriggerEvent(Event.PULL_REQUEST, branch="main", base_branch="dev"))
    assert not matches(spec, push("main"))  # no on.push


def test_schedule_and_manual_need_their_sections() -> None:
    spec = on("  schedule:\n    - cron: '0 3 * * *'")
    assert matches(spec, TriggerEvent(Event.SCHEDULE))
    assert not matches(spec, TriggerEvent(Event.MANUAL))
    assert matches(on("  manual:"), TriggerEvent(Event.MANUAL))


def test_reasons_stay_one_bounded_line_whatever_the_branch_name() -> None:
    spec = on("  push:\n    branches: [main]")
    verdict = matches(spec, push("evil\n\x1b[2Jname" + "x" * 2000))
    assert not verdict.triggered
    assert "\n" not in verdict.reason and "\x1b" not in verdict.reason
    assert len(verdict.reason) <= 500
