"""Which bash steps a warm shell worker can run, and the bash text that sets one up.

Pure functions (no processes): ``warm_shell`` decides, ``step_payload`` writes the payload that a
``shellpool`` worker sources before forking the step. Every value is passed through ``shlex.quote``.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SET_LETTERS = frozenset("abefhkuBCEHPTo")
"""Single-letter bash options that ``set`` applies as the command line would (``o`` takes a name).

Not ``-x``/``-v``: traces inside ``eval`` are prefixed ``++``, so traced steps are spawned."""

SET_O_NAMES = frozenset(
    [
        "allexport",
        "braceexpand",
        "errexit",
        "errtrace",
        "functrace",
        "hashall",
        "histexpand",
        "history",
        "ignoreeof",
        "interactive-comments",
        "keyword",
        "noclobber",
        "noexec",
        "noglob",
        "nolog",
        "notify",
        "nounset",
        "physical",
        "pipefail",
        "posix",
        "privileged",
    ]
)
"""``-o`` names accepted (not ``monitor``, ``onecmd``, ``emacs``/``vi``: they only make sense at start)."""

FALLBACK_NAMES = frozenset(
    [
        "BASHOPTS",
        "SHELLOPTS",
        "BASH_ENV",
        "ENV",
        "POSIXLY_CORRECT",
        "BASH_VERSINFO",
        "BASH_VERSION",
        "EUID",
        "UID",
        "PPID",
        "BASHPID",
        "BASH_ARGV0",
        "BASH_SUBSHELL",
        "BASH_XTRACEFD",
        "BASH_EXECUTION_STRING",
        "BASH_COMMAND",
        "BASH_ARGC",
        "BASH_ARGV",
        "BASH_LINENO",
        "BASH_SOURCE",
        "BASH_ALIASES",
        "BASH_CMDS",
        "BASH_REMATCH",
        "BASH_MONOSECONDS",
        "BASH_TRAPSIG",
        "IFS",
        "PS4",
        "SECONDS",
        "RANDOM",
        "SRANDOM",
        "LINENO",
        "EPOCHSECONDS",
        "EPOCHREALTIME",
        "GROUPS",
        "FUNCNAME",
        "HISTCMD",
        "DIRSTACK",
        "PIPESTATUS",
        "OPTIND",
        "COMP_WORDBREAKS",
        "TMOUT",
        "BASH_COMPAT",
    ]
)
"""Environment names bash reads at start-up, refuses to export or computes itself, or that would change
how the worker itself behaves (``TMOUT`` times out its ``read``, ``IFS`` its word splitting): a step
whose environment holds one is spawned."""

SHELL_MANAGED = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})


@dataclass(frozen=True, slots=True)
class WarmShell:
    """A step shell that a warm worker can stand in for: which bash, its ``$0``, its ``set`` options."""

    executable: str
    argv0: str
    options: tuple[str, ...]  # ``set`` arguments, applied just before the script is eval'ed


@functools.lru_cache(maxsize=64)
def _parse_options(shell: str) -> tuple[str, tuple[str, ...]] | None:
    """``(argv0, set arguments)`` of a ``bash [options]`` shell string, or None if not one we can run."""
    try:
        parts = shlex.split(shell)
    except ValueError:
        return None
    if not parts or "{0}" in shell:
        return None
    options: list[str] = []
    rest = iter(parts[1:])
    for word in rest:
        if word in ("--noprofile", "--norc"):
            continue
        sign, letters = word[:1], word[1:]
        if sign not in ("-", "+") or not letters or letters.count("o") > 1 or not set(letters) <= SET_LETTERS:
            return None
        options.append(word)
        if "o" in letters:
            name = next(rest, None)
            if name not in SET_O_NAMES:
                return None
            options.append(name)
    return parts[0], tuple(options)


@functools.lru_cache(maxsize=64)
def _resolve_bash(argv0: str, path: str | None) -> str | None:
    found = shutil.which(argv0, path=path if path is not None else os.defpath)
    if found is None or Path(found).resolve().name != "bash":
        return None
    return found


def warm_shell(shell: str, env: Mapping[str, str], script: str, cwd: str) -> WarmShell | None:
    """How a warm worker can run ``script`` under ``shell``, or None when it must be spawned.

    A worker applies when ``shell`` is bash (as found on the step's ``PATH``) with only ``set``-able
    options (``-e``, ``-o pipefail``, ``-x``, ``--noprofile``...), no ``{0}`` script file, every
    environment name is a plain shell identifier outside ``FALLBACK_NAMES``, and no value holds NUL.
    """
    parsed = _parse_options(shell)
    if parsed is None:
        return None
    argv0, options = parsed
    if "\0" in script or "\0" in cwd:
        return None
    for name, value in env.items():
        if (
            not (name.isascii() and name.isidentifier())
            or name in FALLBACK_NAMES
            or name.startswith("__by_")
            or "\0" in value
        ):
            return None
    executable = _resolve_bash(argv0, env.get("PATH"))
    if executable is None:
        return None
    return WarmShell(executable, argv0, options)


def _shell_level(value: str | None) -> int:
    """``$SHLVL`` as ``bash -c`` would set it from the inherited value."""
    try:
        level = int(value or "0") + 1
    except ValueError:
        level = 1
    return 1 if level >= 1000 else max(level, 0)


@functools.lru_cache(maxsize=4096)
def _export_word(name: str, value: str) -> str:
    return shlex.quote(f"{name}={value}")


def step_payload(
    shell: WarmShell,
    script: str,
    env: Mapping[str, str],
    cwd: str,
    out_path: str,
    exported: Mapping[str, str],
) -> tuple[bytes, dict[str, str]]:
    """The bash text a worker ``eval``s for one step, and what the worker exports afterwards.

    The worker itself takes the step's directory and environment, as a difference from what it
    exported for its previous step (``exported``), so the forked step inherits them without work
    of its own: changing variables in the child costs copy-on-write page faults, changing a few
    in the parent costs next to nothing. ``__by_c`` is the child's prelude.
    """
    q = shlex.quote
    wanted = {k: v for k, v in env.items() if k not in SHELL_MANAGED}
    lines = []
    gone = [k for k in exported if k not in wanted]
    if gone:
        lines.append("unset -v " + " ".join(gone))
    changed = [_export_word(k, v) for k, v in wanted.items() if exported.get(k) != v]
    if changed:
        lines.append("export -- " + " ".join(changed))
    lines.append(f"cd -P -- {q(cwd)} 2>&- && __by_d=0 || __by_d=1")
    pwd = env.get("PWD")
    if pwd is not None and pwd.startswith("/"):  # bash -c keeps an inherited $PWD naming its directory
        lines.append(f"[[ {q(pwd)} -ef . ]] && PWD={q(pwd)}")
    lines.append("unset -v OLDPWD; declare -x OLDPWD")  # bash -c: exported, without a value ...
    old = env.get("OLDPWD")
    if old is not None:  # ... unless it inherits one naming a directory
        lines.append(f"[[ -d {q(old)} ]] && OLDPWD={q(old)}")
    lines.append(f"export SHLVL={_shell_level(env.get('SHLVL'))}")
    cannot = f"buildyard: cannot start {shell.argv0!r}: cannot enter working directory {cwd}"
    prelude = "\n".join(
        (
            f"exec 4>&1 1>{q(out_path)} 2>&1 || exit 126",
            'printf "start %d\\n" "$BASHPID" >&4; exec 3<&- 4>&-',
            f"if ((__by_d)); then printf '%s\\n' {q(cannot)}; exit 127; fi",
            "unset -v __by_g __by_c __by_d __by_r",
        )
    )
    lines.append(f"__by_c={q(prelude)}")
    lines.append(f"__by_o={q(' '.join(shell.options))}")
    lines.append(f"__by_s={q(script)}")
    return "\n".join(lines).encode("utf-8", "surrogateescape"), wanted
