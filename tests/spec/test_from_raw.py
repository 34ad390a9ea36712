"""``spec.from_raw``: a document converted by an importer is validated with errors in the ORIGINAL file.

The tests play the importer: they parse a real ``.gitlab-ci.yml`` text with positions, convert it
into buildyard's raw document the way a GitLab importer would (``script`` -> ``steps``, other keys
kept), and map every converted path to the position its value had in the GitLab file.
"""

from __future__ import annotations

from typing import Any

import pytest

import buildyard.spec
from buildyard.errors import SpecError
from buildyard.spec import Pos, SourceMap, from_raw
from buildyard.spec.yamlpos import load_yaml

GITLAB = """\
stages: [build, test]

variables:
  GREETING: hello

compile:
  stage: build
  script:
    - make all
  timeout: 10 minutes

unit:
  stage: test
  needs: [compile]
  script:
    - make test
  retry: 2
"""


def _convert(text: str, file: str = ".gitlab-ci.yml") -> tuple[dict[str, Any], SourceMap]:
    """A tiny GitLab -> buildyard converter: the document and the map back into the GitLab file."""
    gitlab, original, problems = load_yaml(text, file)
    assert not problems
    smap = SourceMap(file)
    doc: dict[str, Any] = {"name": "imported", "stages": gitlab["stages"], "jobs": {}}
    smap.values[("stages",)] = original.value_pos(("stages",))
    doc["variables"] = gitlab["variables"]
    smap.values[("variables",)] = original.value_pos(("variables",))
    for name, job in gitlab.items():
        if name in ("stages", "variables"):
            continue
        base = ("jobs", name)
        smap.keys[base] = original.key_pos((name,))
        smap.values[base] = original.value_pos((name,))
        converted: dict[str, Any] = {}
        for key, value in job.items():
            target = "steps" if key == "script" else key  # GitLab's script is buildyard's steps
            converted[target] = value
            smap.keys[(*base, target)] = original.key_pos((name, key))
            smap.values[(*base, target)] = original.value_pos((name, key))
            if isinstance(value, list):
                for i in range(len(value)):
                    smap.values[(*base, target, i)] = original.value_pos((name, key, i))
        doc["jobs"][name] = converted
    return doc, smap


def test_a_bad_value_is_reported_at_its_line_in_the_original_file() -> None:
    doc, smap = _convert(GITLAB)  # GitLab writes "10 minutes"; buildyard's durations are 10m
    with pytest.raises(SpecError) as info:
        from_raw(doc, smap)
    text = str(info.value)
    assert text.startswith(".gitlab-ci.yml:10:12: jobs.compile.timeout: "), text
    assert GITLAB.splitlines()[9] == "  timeout: 10 minutes"


def test_every_problem_is_located_in_the_original_file_at_once() -> None:
    doc, smap = _convert(GITLAB.replace("retry: 2", "retry: lots"))
    with pytest.raises(SpecError) as info:
        from_raw(doc, smap)
    assert str(info.value).splitlines() == [
        ".gitlab-ci.yml:10:12: jobs.compile.timeout: invalid duration '10 minutes'"
        " (use e.g. 30s, 10m, 1h30m)",
        ".gitlab-ci.yml:17:10: jobs.unit.retry: expected a mapping, got a string",
    ]
    doc, smap = _convert(GITLAB.replace("10 minutes", "10m").replace("needs: [compile]", "needs: [compil]"))
    with pytest.raises(
        SpecError, match=r"^\.gitlab-ci\.yml:14:11: jobs\.unit\.needs\[0\]: unknown job 'compil'"
    ):
        from_raw(doc, smap)


def test_a_valid_converted_document_loads_like_a_buildyard_file() -> None:
    doc, smap = _convert(GITLAB.replace("10 minutes", "10m"))
    pipeline = from_raw(doc, smap)
    assert pipeline.file == ".gitlab-ci.yml"
    assert pipeline.positions == {"compile": (6, 1), "unit": (12, 1)}  # the jobs' lines in the GitLab file
    assert pipeline.jobs["compile"].timeout == 600
    assert pipeline.jobs["unit"].needs == ["compile"]
    assert [step.run for step in pipeline.jobs["unit"].steps] == ["make test"]


def test_unmapped_paths_fall_back_to_their_closest_ancestor_and_positions_may_name_another_file() -> None:
    """A converter that synthesises a field (no position of its own) still points somewhere useful."""
    smap = SourceMap(".github/workflows/ci.yml", values={("jobs", "lint"): Pos(7, 3)})
    smap.values[("jobs", "test")] = Pos(3, 5, file=".github/workflows/included.yml")
    doc = {"jobs": {"lint": {"steps": ["ruff check"], "timeout": "soon"}, "test": {"steps": 5}}}
    with pytest.raises(SpecError) as info:
        from_raw(doc, smap)
    lines = str(info.value).splitlines()
    assert any(line.startswith(".github/workflows/ci.yml:7:3: jobs.lint.timeout: ") for line in lines), lines
    assert any(line.startswith(".github/workflows/included.yml:3:5: jobs.test.steps: ") for line in lines), (
        lines
    )


def test_a_document_that_is_not_a_mapping_is_one_located_error() -> None:
    with pytest.raises(SpecError, match=r"^\.gitlab-ci\.yml:1:1: .*must be a mapping"):
        from_raw(["not", "a", "pipeline"], SourceMap(".gitlab-ci.yml"))


def test_from_raw_is_public_on_the_spec_package() -> None:
    assert buildyard.spec.from_raw is from_raw
    assert "from_raw" in buildyard.spec.__all__
    with pytest.raises(AttributeError):
        _ = buildyard.spec.no_such_name
