"""GitLab's ``rules:if`` language and merge rules, with the examples of GitLab's documentation."""

from __future__ import annotations

import pytest

from buildyard.importers.gitlab_load import deep_merge, glob_regex
from buildyard.importers.gitlab_rules import RuleError, Trigger, check_if, evaluate_rules, only_except
from buildyard.importers.gitlab_values import expand, parse_gitlab_duration, shell_value

VARS = {
    "CI_COMMIT_BRANCH": "feature/login",
    "CI_PIPELINE_SOURCE": "push",
    "EMPTY": "",
    "PATTERN": "/^feature/",
    "CI_COMMIT_MESSAGE": "Fix [skip-tests] now",
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('$CI_COMMIT_BRANCH == "feature/login"', True),
        ("$CI_COMMIT_BRANCH == 'main'", False),
        ('$CI_COMMIT_BRANCH != "main"', True),
        ("$CI_COMMIT_BRANCH =~ /^feature/", True),
        ("$CI_COMMIT_BRANCH =~ /^FEATURE/", False),
        ("$CI_COMMIT_BRANCH =~ /^FEATURE/i", True),
        ("$CI_COMMIT_BRANCH !~ /^main$/", True),
        ("$CI_COMMIT_BRANCH =~ $PATTERN", True),  # a variable holding a /regex/
        ("$CI_COMMIT_MESSAGE =~ /\\[skip-tests\\]/", True),
        ("$CI_COMMIT_TAG", False),  # unset
        ("$EMPTY", False),  # set but empty
        ("$CI_COMMIT_BRANCH", True),
        ("$CI_COMMIT_TAG == null", True),
        ("$EMPTY == null", False),
        ('$EMPTY == ""', True),
        ("$UNSET =~ /x/", False),
        ('$CI_COMMIT_TAG || $CI_PIPELINE_SOURCE == "push"', True),
        ('$CI_COMMIT_TAG && $CI_PIPELINE_SOURCE == "push"', False),
        # && binds tighter than ||
        ('$CI_PIPELINE_SOURCE == "push" || $CI_COMMIT_TAG && $NOPE', True),
        ('($CI_PIPELINE_SOURCE == "push" || $CI_COMMIT_TAG) && $NOPE', False),
        ("${CI_COMMIT_BRANCH} == 'feature/login'", True),
    ],
)
def test_rules_if_follows_gitlabs_documented_semantics(expression: str, expected: bool) -> None:
    assert check_if(expression, VARS) is expected


@pytest.mark.parametrize(
    "expression", ['$X = "1"', "$X ==", "($X", '$X == "a" &&', "$X =~ /x/q", "$X =~ /(/"]
)
def test_invalid_expressions_are_errors(expression: str) -> None:
    with pytest.raises(RuleError):
        check_if(expression, {})


def test_the_first_matching_rule_decides_and_no_match_means_never() -> None:
    trigger = Trigger(
        variables={}, branch="main", changed=("src/app.py",), exists=lambda p: p == "Dockerfile"
    )
    rules = [
        {"if": "$CI_COMMIT_BRANCH == 'x'", "when": "always"},
        {"changes": ["docs/**/*"], "when": "always"},
        {"changes": ["src/**/*.py"], "exists": ["Dockerfile"], "when": "manual", "variables": {"A": "1"}},
        {"when": "on_success"},
    ]
    decision, problems = evaluate_rules(rules, {"CI_COMMIT_BRANCH": "main"}, trigger)
    assert problems == []
    assert (decision.when, decision.index, decision.variables) == ("manual", 2, {"A": "1"})
    assert evaluate_rules([{"if": "$NOPE"}], {}, trigger)[0].when == "never"
    unknown = Trigger(variables={}, changed=None)  # a new branch: GitLab says changes is true
    assert evaluate_rules([{"changes": ["x"]}], {}, unknown)[0].when == "on_success"


def test_only_except_refs_and_variables() -> None:
    tag = Trigger(variables={}, tag="v1.2.0")
    branch = Trigger(variables={}, branch="main")
    assert only_except(None, None, {}, tag) and only_except(None, None, {}, branch)
    assert only_except(["tags"], None, {}, tag) and not only_except(["tags"], None, {}, branch)
    assert only_except(["/^v\\d/"], None, {}, tag)
    assert not only_except(None, ["main"], {}, branch)
    assert only_except({"variables": ["$RELEASE == 'yes'"]}, None, {"RELEASE": "yes"}, branch)
    assert not only_except({"refs": ["main"], "variables": ["$RELEASE"]}, None, {}, branch)


def test_extends_merge_merges_mappings_and_replaces_everything_else() -> None:
    base = {"variables": {"A": "1", "B": "2"}, "script": ["a", "b"], "rules": [{"if": "$X"}]}
    child = {"variables": {"B": "3"}, "script": ["c"]}
    assert deep_merge(base, child) == {
        "variables": {"A": "1", "B": "3"},
        "script": ["c"],
        "rules": [{"if": "$X"}],
    }


def test_globs_keep_star_in_one_directory() -> None:
    assert glob_regex("ci/*.yml").fullmatch("ci/a.yml")
    assert not glob_regex("ci/*.yml").fullmatch("ci/sub/a.yml")
    assert glob_regex("ci/**/*.yml").fullmatch("ci/sub/deep/a.yml")
    assert glob_regex("ci/**/*.yml").fullmatch("ci/a.yml")
    assert glob_regex("*.{yml,yaml}").fullmatch("x.yaml")


def test_variable_expansion_and_shell_words() -> None:
    env = {"A": "x", "B": "y"}
    assert expand("$A-${B}-$$A-$NONE.", env) == "x-y-$A-."
    assert shell_value('$A "q" `cmd` $(cmd) $$', True) == '"${A} \\"q\\" \\`cmd\\` \\$(cmd) \\$"'
    assert shell_value("$A", False) == "'$A'"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3600", 3600),
        (90, 90),
        ("1h 30m", 5400),
        ("90 minutes", 5400),
        ("2 hours 10 minutes", 7800),
        ("1 day", 86400),
    ],
)
def test_gitlab_durations(text: str | int, seconds: int) -> None:
    assert parse_gitlab_duration(text) == seconds
