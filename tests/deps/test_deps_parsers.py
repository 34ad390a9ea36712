"""Lockfile parsers against real lockfiles.

Fixtures under ``fixtures/`` and how they were produced:
- ``uv/uv.lock``: ``uv lock`` (uv 0.13.9) on ``uv/pyproject.toml``; ``pip/requirements-hashes.txt`` and
  ``pylock/pylock.toml``: ``uv export --format requirements.txt`` / ``--format pylock.toml`` of that lock.
- ``pipenv/Pipfile.lock``: ``pipenv lock`` (pipenv from PyPI) on ``pipenv/Pipfile``.
- ``poetry/poetry.lock``: ``poetry lock`` (poetry 2.x from PyPI, with https://pypi.org/simple as source).
- ``pip-tools/requirements.txt``: ``pip-compile --generate-hashes requirements.in`` (pip-tools from PyPI).
- ``npm-v1|v2|v3/package-lock.json``: ``npm install --package-lock-only --lockfile-version N`` (npm 11.19)
  on the same ``package.json``; ``yarn-v1/yarn.lock``: yarn 1.22 from npm; ``pnpm/pnpm-lock.yaml``: pnpm 9
  (lockfile 9.0); ``pnpm-v6/pnpm-lock.yaml``: pnpm 8 (lockfile 6.0); ``yarn-berry/yarn.lock``: yarn 4
  (``@yarnpkg/cli-dist`` from npm, ``yarn install --mode=update-lockfile``).
- Written by hand, faithful to each tool's format (the tools are not installable here): go.mod/go.sum,
  Cargo.lock, pom.xml, gradle.lockfile, Gemfile.lock, packages.lock.json, composer.lock.
"""

from __future__ import annotations

import importlib.metadata as md
import sysconfig
from pathlib import Path

import pytest

from buildyard.deps.inventory import build_inventory, discover
from buildyard.deps.model import Ecosystem, Package, Scope

FIXTURES = Path(__file__).parent / "fixtures"


def inv(*names: str):
    return build_inventory([FIXTURES / n for n in names], FIXTURES)


def by_name(packages: list[Package]) -> dict[str, Package]:
    return {p.normalized_name: p for p in packages}


def assert_lines_point_at_names(packages: list[Package]) -> None:
    for pkg in packages:
        text = (FIXTURES / pkg.source).read_text().splitlines()
        assert pkg.line > 0, pkg
        assert pkg.name.split(":")[-1].split("/")[-1].lower() in text[pkg.line - 1].lower(), (
            pkg,
            text[pkg.line - 1],
        )


def test_uv_lock_direct_dev_and_hashes():
    result = inv("uv")
    assert not result.problems
    pkgs = by_name(result.packages)
    assert pkgs["jinja2"].version == "2.10" and pkgs["jinja2"].direct and pkgs["jinja2"].scope is Scope.PROD
    assert pkgs["pytest"].direct and pkgs["pytest"].scope is Scope.DEV
    assert pkgs["pluggy"].direct is False and pkgs["pluggy"].scope is Scope.DEV
    assert pkgs["urllib3"].direct is False and pkgs["urllib3"].scope is Scope.PROD
    assert "demo-app" not in pkgs  # the project itself is not a dependency
    assert all(alg == "SHA-256" and len(h) == 64 for p in result.packages for alg, h in p.hashes)
    assert ("urllib3", "1.23") in pkgs["requests"].dependencies
    assert_lines_point_at_names(result.packages)


def test_uv_exports_agree_with_the_lock():
    """requirements.txt and pylock.toml exported from the same uv.lock list the same pins."""
    lock = {(p.normalized_name, p.version) for p in inv("uv").packages}
    req = inv("pip").packages
    pylock = inv("pylock").packages
    assert {(p.normalized_name, p.version) for p in req} == lock
    assert {(p.normalized_name, p.version) for p in pylock} == lock
    direct = {p.normalized_name for p in req if p.direct}
    assert direct == {"jinja2", "requests", "pyyaml"}  # '# via demo-app' marks the project's own requirements
    assert all(p.hashes for p in req)
    assert_lines_point_at_names(req)
    assert_lines_point_at_names(pylock)


def test_pipfile_lock_and_poetry_lock():
    pipenv = by_name(inv("pipenv").packages)
    assert pipenv["requests"].version == "2.19.1" and pipenv["requests"].direct
    assert pipenv["pytest"].scope is Scope.DEV and pipenv["pytest"].direct
    assert pipenv["urllib3"].direct is False
    poetry = by_name(inv("poetry").packages)
    assert poetry["jinja2"].direct and poetry["markupsafe"].direct is False
    assert poetry["pytest"].scope is Scope.DEV and poetry["pytest"].direct
    assert poetry["iniconfig"].scope is Scope.DEV and not poetry["iniconfig"].direct
    assert ("MarkupSafe", poetry["markupsafe"].version) in poetry["jinja2"].dependencies
    assert all(alg == "SHA-256" for p in poetry.values() for alg, _ in p.hashes) and poetry["jinja2"].hashes
    assert_lines_point_at_names(list(poetry.values()))


def test_pip_compile_annotations():
    pkgs = by_name(inv("pip-tools").packages)
    assert {n for n, p in pkgs.items() if p.direct} == {"jinja2", "requests"}  # '# via -r requirements.in'
    assert pkgs["urllib3"].version == "1.23" and pkgs["urllib3"].hashes


def test_requirements_includes_markers_and_options(tmp_path):
    (tmp_path / "base.txt").write_text(
        "six==1.16.0 ; python_version >= '3'\nrequests>=2  # unpinned: skipped\n"
    )
    (tmp_path / "requirements-dev.txt").write_text(
        "# comment\n-r base.txt\n--index-url https://example.org/simple\n"
        "Django[bcrypt]==3.2.0 \\\n    --hash=sha256:" + "a" * 64 + "\n-e ./local\nflask===2.0.1\n"
    )
    result = build_inventory([tmp_path / "requirements-dev.txt"], tmp_path)
    got = {(p.name, p.version, p.source, p.line) for p in result.packages}
    assert got == {
        ("six", "1.16.0", "base.txt", 1),
        ("Django", "3.2.0", "requirements-dev.txt", 4),
        ("flask", "2.0.1", "requirements-dev.txt", 7),
    }
    django = next(p for p in result.packages if p.name == "Django")
    assert django.hashes == (("SHA-256", "a" * 64),)
    assert django.purl == "pkg:pypi/django@3.2.0"


NPM_FORMATS = ["npm-v1", "npm-v2", "npm-v3", "yarn-v1", "pnpm", "pnpm-v6"]


@pytest.mark.parametrize("name", NPM_FORMATS)
def test_npm_family(name):
    result = inv(name)
    assert not result.problems
    pkgs = {(p.name, p.version): p for p in result.packages}
    express = pkgs[("express", "4.17.1")]
    assert express.direct is True and express.scope is Scope.PROD
    assert pkgs[("minimist", "1.2.0")].scope is Scope.DEV and pkgs[("minimist", "1.2.0")].direct
    assert (
        pkgs[("@babel/helper-plugin-utils", "7.10.4")].purl == "pkg:npm/%40babel/helper-plugin-utils@7.10.4"
    )
    assert pkgs[("body-parser", "1.19.0")].direct is False
    assert ("body-parser", "1.19.0") in express.dependencies
    assert all(
        p.hashes and p.hashes[0][0] == "SHA-512" and len(p.hashes[0][1]) == 128 for p in result.packages
    )
    assert all(p.line > 0 for p in result.packages)


def test_npm_lockfile_versions_agree():
    """npm wrote v1, v2 and v3 from one resolution: the three parse to the same packages."""
    sets = [{(p.name, p.version, p.scope) for p in inv(n).packages} for n in ("npm-v1", "npm-v2", "npm-v3")]
    assert sets[0] == sets[1] == sets[2]
    assert by_name(inv("npm-v3").packages)["lodash"].license == "MIT"


def test_yarn_berry():
    pkgs = by_name(inv("yarn-berry").packages)
    assert pkgs["lodash"].direct and pkgs["lodash"].scope is Scope.PROD
    assert pkgs["express"].version == "4.17.1" and pkgs["express"].direct
    assert pkgs["minimist"].scope is Scope.DEV and pkgs["minimist"].direct
    assert pkgs["body-parser"].direct is False and pkgs["body-parser"].scope is Scope.PROD
    assert ("body-parser", "1.19.0") in pkgs["express"].dependencies
    assert "demo-berry" not in pkgs
    assert_lines_point_at_names(list(pkgs.values()))


def test_go_mod_with_replace_and_go_sum():
    pkgs = by_name(inv("go").packages)
    assert pkgs["github.com/gin-gonic/gin"].direct and pkgs["golang.org/x/text"].direct is False
    assert "github.com/old/thing" not in pkgs and pkgs["github.com/new/thing"].version == "v1.2.0"
    assert (
        pkgs["github.com/ugorji/go/codec"].version == "v1.1.7"
    )  # highest go.sum version of an unlisted module
    assert pkgs["gopkg.in/yaml.v2"].purl == "pkg:golang/gopkg.in/yaml.v2@v2.2.2"


def test_cargo_maven_gradle_ruby_nuget_composer():
    cargo = by_name(inv("cargo").packages)
    assert (
        set(cargo) == {"libc", "smallvec", "time"} and cargo["smallvec"].direct and not cargo["libc"].direct
    )
    assert cargo["time"].dependencies == (("libc", ""),) or cargo["time"].dependencies == (
        ("libc", "0.2.150"),
    )
    maven = by_name(inv("maven").packages)
    assert maven["org.apache.logging.log4j:log4j-core"].version == "2.14.1"  # ${log4j.version}
    assert maven["com.google.guava:guava"].version == "29.0-jre"  # from dependencyManagement
    assert maven["junit:junit"].scope is Scope.DEV
    assert (
        maven["org.apache.logging.log4j:log4j-core"].purl
        == "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
    )
    gradle = by_name(inv("gradle").packages)
    assert gradle["junit:junit"].scope is Scope.DEV and gradle["junit:junit"].line == 5
    ruby = by_name(inv("ruby").packages)
    assert ruby["nokogiri"].version == "1.10.4" and ruby["nokogiri"].direct and not ruby["loofah"].direct
    nuget = inv("nuget").packages
    assert [(p.name, p.version, p.direct) for p in nuget] == [
        ("Newtonsoft.Json", "12.0.1", True),
        ("System.Text.Json", "4.7.0", False),
    ]
    composer = by_name(inv("composer").packages)
    assert composer["guzzlehttp/guzzle"].license == "MIT" and composer["guzzlehttp/guzzle"].direct
    assert composer["phpunit/phpunit"].scope is Scope.DEV
    for name in ("cargo", "maven", "ruby", "nuget", "composer"):
        assert_lines_point_at_names(inv(name).packages)


def test_discover_respects_gitignore(tmp_path):
    (tmp_path / ".gitignore").write_text("build/\n*.generated.txt\n")
    for rel in (
        "a/poetry.lock",
        "build/package-lock.json",
        "node_modules/x/package-lock.json",
        "requirements.generated.txt",
        "requirements.txt",
        "sub/.gitignore",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    (tmp_path / "sub" / ".gitignore").write_text("Cargo.lock\n")
    (tmp_path / "sub" / "Cargo.lock").write_text("")
    (tmp_path / "sub" / "go.mod").write_text("")
    found = {p.relative_to(tmp_path).as_posix() for p in discover(tmp_path)}
    assert found == {"a/poetry.lock", "requirements.txt", "sub/go.mod"}


@pytest.mark.parametrize(
    ("name", "content", "line", "words"),
    [
        (
            "package-lock.json",
            '{\n  "lockfileVersion": 3,\n  "packages": {\n    "": {}\n  ,}\n}',
            5,
            "invalid JSON",
        ),
        ("uv.lock", 'version = 1\n[[package]]\nname = "x"\nversion = \n', 4, "invalid TOML"),
        ("go.mod", "module x\n\nrequire (\n  a v1\n", 0, "unterminated"),
        ("go.mod", "module x\nfrobnicate y\n", 2, "unknown directive"),
        ("yarn.lock", "# yarn lockfile v1\n\nx@1:\n  version\n", 4, "cannot parse"),
        ("pnpm-lock.yaml", "lockfileVersion: '9.0'\npackages: [\n", 3, "invalid YAML"),
        (
            "pom.xml",
            "<project><dependencies><dependency><groupId>g</groupId><artifactId>a</artifactId>"
            "<version>${nope}</version></dependency></dependencies></project>",
            1,
            "${nope}",
        ),
        ("package-lock.json", '{"lockfileVersion": 7}', 0, "unsupported lockfileVersion"),
        (
            "pylock.toml",
            'lock-version = "2.0"\ncreated-by = "x"\npackages = []\n',
            0,
            "unsupported lock-version",
        ),
        # PEP 751 as packaging.pylock validates it: names normalized, every artifact hashed
        (
            "pylock.toml",
            'lock-version = "1.0"\ncreated-by = "x"\n\n[[packages]]\nname = "a"\nversion = "1"\n'
            'directory = {path = "."}\n\n[[packages]]\nname = "Six"\nversion = "1.16.0"\n',
            9,
            "Name 'Six' is not normalized in 'packages[1].name'",
        ),
        (
            "pylock.toml",
            'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "six"\nversion = "1"\n'
            'sdist = {url = "https://x/six-1.tar.gz", hashes = {}}\n',
            3,
            "At least one hash must be provided",
        ),
        ("pylock.toml", 'lock-version = "1.0"\npackages = []\n', 0, "Missing required value in 'created-by'"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, name, content, line, words):
    (tmp_path / name).write_text(content)
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "requirements.txt").write_text("six==1.16.0\n")
    result = build_inventory([tmp_path], tmp_path)
    assert [p.normalized_name for p in result.packages] == ["six"]  # the good file is still reported
    [problem] = result.problems
    assert problem.file == name and problem.line == line and words in problem.message


def test_unknown_explicit_file_and_binary_file(tmp_path):
    (tmp_path / "notes.md").write_text("hi")
    (tmp_path / "requirements.txt").write_bytes(b"\xff\xfe\x00bad")
    result = build_inventory([tmp_path / "notes.md", tmp_path / "requirements.txt"], tmp_path)
    assert [
        (p.file, "unknown lockfile format" in p.message or "not UTF-8" in p.message) for p in result.problems
    ] == [("notes.md", True), ("requirements.txt", True)]


def test_installed_site_packages_of_this_venv():
    """The real environment running the tests: versions and licenses match importlib.metadata."""

    site = Path(sysconfig.get_paths()["purelib"])
    result = build_inventory([site], site)
    pkgs = by_name(result.packages)
    assert pkgs["packaging"].version == md.version("packaging")
    assert pkgs["pytest"].ecosystem is Ecosystem.PYPI and pkgs["pytest"].license
    assert pkgs["packaging"].license  # PEP 639 expression or classifiers


def test_node_modules(tmp_path):
    nm = tmp_path / "node_modules"
    for rel, doc in {
        "lodash/package.json": '{"name": "lodash", "version": "4.17.21", "license": "MIT"}',
        "@types/node/package.json": '{"name": "@types/node", "version": "20.1.0", "license": "MIT"}',
        "a/package.json": '{"name": "a", "version": "1.0.0", '
        '"licenses": [{"type": "MIT"}, {"type": "Apache-2.0"}]}',
        "a/node_modules/lodash/package.json": '{"name": "lodash", "version": "3.0.0"}',
    }.items():
        (nm / rel).parent.mkdir(parents=True, exist_ok=True)
        (nm / rel).write_text(doc)
    got = {(p.name, p.version, p.license) for p in build_inventory([nm], tmp_path).packages}
    assert got == {
        ("lodash", "4.17.21", "MIT"),
        ("@types/node", "20.1.0", "MIT"),
        ("a", "1.0.0", "MIT OR Apache-2.0"),
        ("lodash", "3.0.0", None),
    }


def test_yarn_v1_entry_without_integrity_uses_resolved_sha1(tmp_path):
    (tmp_path / "yarn.lock").write_text(
        "# yarn lockfile v1\n\n\n"
        'left-pad@^1.0.0, "left-pad@>=1.1":\n'
        '  version "1.3.0"\n'
        '  resolved "https://registry.yarnpkg.com/left-pad/-/left-pad-1.3.0.tgz#5b8a3a7765dfe001261dde915589e782f8c94d1e"\n'
    )
    [pkg] = build_inventory([tmp_path], tmp_path).packages
    assert (pkg.name, pkg.version, pkg.line) == ("left-pad", "1.3.0", 4)
    assert pkg.hashes == (("SHA-1", "5b8a3a7765dfe001261dde915589e782f8c94d1e"),)
    assert pkg.direct is None  # no package.json next to it


def test_pom_inherits_properties_and_managed_versions_from_local_parent(tmp_path):
    (tmp_path / "pom.xml").write_text(
        "<project><groupId>com.example</groupId><artifactId>parent</artifactId><version>1</version>"
        "<properties><jackson.version>2.13.0</jackson.version></properties>"
        "<dependencyManagement><dependencies><dependency><groupId>org.slf4j</groupId>"
        "<artifactId>slf4j-api</artifactId><version>1.7.36</version></dependency></dependencies>"
        "</dependencyManagement></project>"
    )
    child = tmp_path / "app"
    child.mkdir()
    (child / "pom.xml").write_text(
        "<project>\n<parent><groupId>com.example</groupId><artifactId>parent</artifactId><version>1</version>"
        "</parent>\n<artifactId>app</artifactId>\n<dependencies>\n"
        "<dependency><groupId>com.fasterxml.jackson.core</groupId><artifactId>jackson-core</artifactId>"
        "<version>${jackson.version}</version></dependency>\n"
        "<dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId></dependency>\n"
        "<dependency><groupId>x</groupId><artifactId>y</artifactId><version>${remote.only}</version></dependency>\n"
        "</dependencies></project>"
    )
    result = build_inventory([child / "pom.xml"], tmp_path)
    assert result.packages == []
    [problem] = result.problems
    assert problem.line == 7 and "${remote.only} is not defined" in problem.message
    text = (child / "pom.xml").read_text().replace("${remote.only}", "3.0")
    (child / "pom.xml").write_text(text)
    got = {(p.name, p.version) for p in build_inventory([child / "pom.xml"], tmp_path).packages}
    assert got == {
        ("com.fasterxml.jackson.core:jackson-core", "2.13.0"),
        ("org.slf4j:slf4j-api", "1.7.36"),
        ("x:y", "3.0"),
    }


def test_uv_workspace_members_and_path_dependencies_are_not_packages(tmp_path):
    (tmp_path / "uv.lock").write_text(
        'version = 1\nrequires-python = ">=3.11"\n\n[manifest]\nmembers = ["app", "lib"]\n\n'
        '[[package]]\nname = "app"\nversion = "0.1.0"\nsource = { virtual = "." }\n'
        'dependencies = [{ name = "lib" }, { name = "six" }]\n\n'
        '[[package]]\nname = "lib"\nversion = "0.2.0"\nsource = { editable = "packages/lib" }\n'
        'dependencies = [{ name = "idna" }, { name = "vendored" }]\n\n'
        '[[package]]\nname = "vendored"\nversion = "1.0.0"\nsource = { directory = "vendor/v" }\n\n'
        '[[package]]\nname = "six"\nversion = "1.16.0"\nsource = { registry = "https://pypi.org/simple" }\n\n'
        '[[package]]\nname = "idna"\nversion = "3.7"\nsource = { registry = "https://pypi.org/simple" }\n'
    )
    pkgs = by_name(build_inventory([tmp_path], tmp_path).packages)
    assert set(pkgs) == {"six", "idna"}
    assert pkgs["six"].direct and pkgs["idna"].direct  # a direct dependency of a workspace member
