"""Secret values: from the environment or a dotenv-style ``--secrets-file``; never stored."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from buildyard.errors import UserError


class SecretsFileError(UserError):
    """The secrets file cannot be read or parsed."""


def read_secrets_file(path: Path) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines (``#`` comments, optional ``export``, single/double quotes)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretsFileError(f"{path}: cannot read secrets file ({exc.strerror})") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise SecretsFileError(f"{path}:{number}: expected KEY=VALUE (got a line without a valid name)")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            if raw.strip().split("=", 1)[1].strip().startswith('"'):
                value = value.encode().decode("unicode_escape")
        values[key] = value
    return values


def resolve(names: Iterable[str], env: Mapping[str, str], file_values: Mapping[str, str]) -> dict[str, str]:
    """Values of the declared secret ``names`` that are set (the file wins over the environment)."""
    out: dict[str, str] = {}
    for name in names:
        if name in file_values:
            out[name] = file_values[name]
        elif name in env:
            out[name] = env[name]
    return out
