"""Settings: command line > environment > project file > user file > default, each value with its source."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from buildyard import settings
from buildyard.settings import Origin, SettingsError, Source, resolve

if TYPE_CHECKING:  # only for annotations: another directory's conftest may own the name at run time
    from conftest import CliResult

SRC = Path(__file__).resolve().parent.parent / "src" / "buildyard"
README = Path(__file__).resolve().parent.parent / "README.md"


def _files(tmp_path: Path, user: str | None = None, project: str | None = None) -> tuple[Path, list[Path]]:
    project_dir = tmp_path / "proj"
    (project_dir / ".buildyard").mkdir(parents=True)
    user_file = tmp_path / "user.toml"
    if user is not None:
        user_file.write_text(user)
    if project is not None:
        (project_dir / settings.PROJECT_FILE).write_text(project)
    return project_dir, [user_file, project_dir / settings.PROJECT_FILE]


def test_defaults_derive_from_the_project() -> None:
    current = resolve(Path("/p"), {})
    assert current.home == Path("/p/.buildyard")
    assert current.artifacts_dir == Path("/p/.buildyard/artifacts")
    assert current.keys_dir == Path("/p/.buildyard/keys")
    assert (current.db, current.executor, current.kill_grace) == (None, "spawn", 5.0)
    assert current.log_limit == 100_000_000
    assert current.cache_max_size == 10 * 1024**3
    assert all(origin == Origin(Source.DEFAULT) for origin in current.origins.values())


def test_precedence_cli_over_env_over_project_file_over_user_file(tmp_path: Path) -> None:
    project, files = _files(
        tmp_path,
        user='executor = "pool"\nkill_grace = 1\nlog_limit = "1MB"\nhome = "from-user"\n',
        project='kill_grace = 2.5\nlog_limit = "2MB"\n',
    )
    env = {"BUILDYARD_LOG_LIMIT": "3MB"}
    cli = {"kill_grace": ("--kill-grace", "7")}
    current = resolve(project, env, files, cli)
    assert current.executor == "pool"
    assert current.origins["executor"] == Origin(Source.FILE, str(files[0]))
    assert current.kill_grace == 7.0 and str(current.origins["kill_grace"]) == "cli --kill-grace"
    assert current.log_limit == 3_000_000 and str(current.origins["log_limit"]) == "env BUILDYARD_LOG_LIMIT"
    # a relative path from a file is relative to the project; what derives from it follows
    assert current.home == project / "from-user"
    assert current.artifacts_dir == project / "from-user" / "artifacts"
    assert current.origins["artifacts_dir"].source is Source.DEFAULT
    without_env = resolve(project, {}, files)
    assert without_env.log_limit == 2_000_000
    assert str(without_env.origins["log_limit"]) == f"file {files[1]}"
    assert without_env.kill_grace == 2.5
    assert without_env.files == tuple(files)


def test_an_empty_variable_counts_as_unset() -> None:
    current = resolve(Path("/p"), {"BUILDYARD_HOME": "", "BUILDYARD_DB": "sqlite:///x.db"})
    assert current.home == Path("/p/.buildyard") and current.origins["home"].source is Source.DEFAULT
    assert current.db == "sqlite:///x.db" and str(current.origins["db"]) == "env BUILDYARD_DB"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"BUILDYARD_LOG_LIMIT": "lots"},
            "BUILDYARD_LOG_LIMIT='lots' is not a size (e.g. 100MB, 512KiB, 0 for no cap)",
        ),
        (
            {"BUILDYARD_LOG_LIMIT": "100"},
            "BUILDYARD_LOG_LIMIT='100' is too small (at least 4096 bytes, or 0)",
        ),
        (
            {"BUILDYARD_KILL_GRACE": "soon"},
            "BUILDYARD_KILL_GRACE='soon' is not a number of seconds (e.g. 5, 0.5)",
        ),
        ({"BUILDYARD_KILL_GRACE": "-1"}, "BUILDYARD_KILL_GRACE='-1' must be a finite, non-negative number"),
        (
            {"BUILDYARD_WORKSPACE_METHOD": "rsync"},
            "BUILDYARD_WORKSPACE_METHOD='rsync' is not one of: auto, copy",
        ),
        (
            {"BUILDYARD_ARTIFACT_THREADS": "0"},
            "BUILDYARD_ARTIFACT_THREADS='0' is not a positive whole number",
        ),
        ({"BUILDYARD_CACHE_MAX_SIZE": "big"}, "BUILDYARD_CACHE_MAX_SIZE='big' is not a size (e.g. 5GB"),
        ({"BUILDYARD_DAEMON": "maybe"}, "BUILDYARD_DAEMON='maybe' is not one of: 1, on"),
        ({"BUILDYARD_CACHE_SALT": "secret-ish"}, "BUILDYARD_CACHE_SALT=*** must be 64 hex characters"),
    ],
)
def test_an_invalid_variable_is_one_line_naming_it_and_the_expected_form(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as info:
        resolve(Path("/p"), env)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)
    assert "secret-ish" not in str(info.value)  # a secret's value is never echoed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'kill_grace = "soon"\n',
            "{file}: kill_grace = 'soon' is not a number of seconds (e.g. 5, 0.5) (BUILDYARD_KILL_GRACE)",
        ),
        ('executer = "pool"\n', "{file}: unknown setting 'executer' (did you mean 'executor'?)"),
        (
            'cache_salt = "ab"\n',
            "{file}: 'cache_salt' is read from the environment only (set BUILDYARD_CACHE_SALT)",
        ),
        ("home = [1]\n", "{file}: home must be a string or a number (path)"),
        ("home = \n", "{file}: invalid TOML: "),
    ],
)
def test_an_invalid_config_file_is_one_line_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    project, files = _files(tmp_path, project=text)
    with pytest.raises(SettingsError) as info:
        resolve(project, {}, files)
    assert str(info.value).startswith(message.format(file=files[1])), str(info.value)
    assert "\n" not in str(info.value)


def test_an_oversized_config_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    project, files = _files(tmp_path, user="# " + "x" * settings.MAX_CONFIG_BYTES + "\n")
    with pytest.raises(SettingsError, match="config file larger than 64 KiB"):
        resolve(project, {}, files)


def test_the_user_file_location() -> None:
    assert settings.user_file({"HOME": "/h"}) == Path("/h/.config/buildyard/config.toml")
    assert settings.user_file({"HOME": "/h", "XDG_CONFIG_HOME": "/x"}) == Path("/x/buildyard/config.toml")
    assert settings.user_file({"HOME": "/h", "BUILDYARD_CONFIG": "/c.toml"}) == Path("/c.toml")
    assert settings.user_file({"HOME": "/h", "BUILDYARD_CONFIG": ""}) is None


def test_every_setting_is_a_typed_field_and_documented_in_the_readme() -> None:
    assert settings.field_names() == [s.name for s in settings.SETTINGS]
    readme = README.read_text()
    missing = [s.env for s in settings.SETTINGS if f"`{s.env}`" not in readme]
    assert missing == []


def test_settings_are_read_only_in_buildyard_settings() -> None:
    """No other module reads a BUILDYARD_* setting from the environment (job variables it *sets* are fine).

    The daemon client and ``run_cli``'s profiler switch are the documented exceptions: they run before
    anything is imported.
    """
    names = {s.env for s in settings.SETTINGS}
    exceptions = {
        ("buildyard/daemon/client.py", "BUILDYARD_DAEMON"),
        ("buildyard/daemon/client.py", "BUILDYARD_DAEMON_DIR"),
        ("buildyard/cli/__init__.py", "BUILDYARD_PROFILE"),
    }
    #: Names that appear only inside a message telling the user which variable to set.
    in_messages = {
        ("buildyard/cache/remote.py", "BUILDYARD_REMOTE_CACHE_TOKEN"),
        ("buildyard/engine/workspace.py", "BUILDYARD_WORKSPACE_METHOD"),
    }
    found = []
    for path in SRC.rglob("*.py"):
        rel = str(path.relative_to(SRC.parent))
        if rel == "buildyard/settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found += (
                    []
                    if (rel, node.value) in exceptions | in_messages
                    else [f"{rel}:{node.lineno} {node.value}"]
                )
    assert found == []


# -- buildyard config ------------------------------------------------------------------------------


def test_config_lists_every_setting_with_its_source(
    cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, _ = _files(tmp_path, project='executor = "pool"\n')
    user = tmp_path / "user.toml"
    user.write_text('cache_max_size = "5GB"\n')
    monkeypatch.setenv("BUILDYARD_CONFIG", str(user))
    monkeypatch.setenv("BUILDYARD_KILL_GRACE", "2")
    monkeypatch.setenv("BUILDYARD_REMOTE_CACHE_TOKEN", "tok-123")
    result = cli("-C", project, "config", "--json", "--set", "log_limit=1MB")
    assert result.code == 0, result.err
    rows = {row["name"]: row for row in json.loads(result.out)}
    assert list(rows) == [s.name for s in settings.SETTINGS]
    assert (rows["executor"]["value"], rows["executor"]["source"]) == ("pool", "file")
    assert rows["executor"]["where"] == str(project / settings.PROJECT_FILE)
    assert (rows["cache_max_size"]["value"], rows["cache_max_size"]["where"]) == (str(5 * 10**9), str(user))
    assert (rows["kill_grace"]["value"], rows["kill_grace"]["source"]) == ("2.0", "env")
    assert rows["kill_grace"]["where"] == "BUILDYARD_KILL_GRACE"
    assert (rows["log_limit"]["value"], rows["log_limit"]["source"]) == ("1000000", "cli")
    assert (rows["home"]["value"], rows["home"]["source"]) == (str(project / ".buildyard"), "default")
    assert rows["remote_cache_token"]["value"] == "***" and "tok-123" not in result.out
    assert (rows["config"]["value"], rows["config"]["where"]) == (str(user), "BUILDYARD_CONFIG")
    assert rows["db"]["value"] is None and rows["db"]["default"].startswith("SQLite")
    text = cli("-C", project, "config")
    assert text.code == 0
    lines = {line.split()[0]: line for line in text.out.splitlines()}
    assert lines["executor"].endswith(f"file {project / settings.PROJECT_FILE}")
    assert lines["kill_grace"].endswith("env BUILDYARD_KILL_GRACE")
    assert lines["home"].endswith("default")
    assert "(SQLite <home>/buildyard.db)" in lines["db"]


def test_config_reports_an_invalid_value_in_one_line(
    cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUILDYARD_CONFIG", "")
    monkeypatch.setenv("BUILDYARD_KILL_GRACE", "soon")
    result = cli("-C", tmp_path, "config")
    assert result.code == 2
    assert (
        result.err
        == "buildyard: error: BUILDYARD_KILL_GRACE='soon' is not a number of seconds (e.g. 5, 0.5)\n"
    )
    unknown = cli("-C", tmp_path, "config", "--set", "nope=1")
    assert unknown.code == 2 and "--set 'nope=1'" in unknown.err


def test_a_setting_from_the_project_file_reaches_the_services(
    cli: Callable[..., CliResult], make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``home`` set in ``.buildyard/config.toml`` moves the history database, as BUILDYARD_HOME does."""
    monkeypatch.setenv("BUILDYARD_CONFIG", "")
    root = make_project({"buildyard.yml": "name: p\njobs:\n  a:\n    steps: [echo hi]\n"})
    (root / ".buildyard").mkdir()
    (root / settings.PROJECT_FILE).write_text('home = "state"\n')
    assert cli("-C", root, "run").code == 0
    assert (root / "state" / "buildyard.db").is_file()
    shown = cli("-C", root, "history", "--json")
    assert shown.code == 0 and len(json.loads(shown.out)) == 1
