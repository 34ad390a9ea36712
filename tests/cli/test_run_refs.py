"""Naming runs and files the same way everywhere: PIPELINE#N, and -f for the pipeline file."""

from __future__ import annotations

import json


def test_a_run_number_two_pipelines_share_is_ambiguous_and_pipeline_hash_n_picks_one(
    make_project, cli
) -> None:
    root = make_project(
        {
            "buildyard.yml": "name: api\njobs:\n  a:\n    script: 'true'\n",
            "web.yml": "name: web\njobs:\n  b:\n    script: 'true'\n",
        }
    )
    assert cli("-C", root, "run").code == 0 and cli("-C", root, "run", "-f", "web.yml").code == 0
    shown = cli("-C", root, "show", "1")
    assert shown.code != 0 and shown.err.count("\n") == 1
    assert "run #1 is ambiguous: pipelines api and web both have one; give PIPELINE#1" in shown.err
    api = json.loads(cli("-C", root, "show", "api#1", "--json").out)
    web = json.loads(cli("-C", root, "show", "web#1", "--json").out)
    assert (api["pipeline"], [j["id"] for j in api["jobs"]]) == ("api", ["a"])
    assert (web["pipeline"], [j["id"] for j in web["jobs"]]) == ("web", ["b"])
    assert cli("-C", root, "logs", "web#1", "b").code == 0


def test_gates_check_takes_the_pipeline_file_with_f_like_run_and_validate(
    make_project, cli, monkeypatch
) -> None:
    text = "gates:\n  - duration: {max: 1h}\njobs:\n  a:\n    script: 'true'\n"
    root = make_project({"ci.yml": text})
    monkeypatch.chdir(root)
    assert cli("gates", "check", "-f", "ci.yml", "--duration", "2h").code == 1
    assert cli("gates", "check", "-c", "ci.yml", "--duration", "1m").code == 0
