"""Size and age parsing for ``cache prune``."""

from __future__ import annotations

import pytest

from buildyard.cache.store import CacheStore
from buildyard.cache.units import format_size, parse_age, parse_size
from buildyard.errors import UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5GB", 5 * 10**9),
        ("512MiB", 512 * 2**20),
        ("1.5 kb", 1500),
        ("100", 100),
        ("2TiB", 2 * 2**40),
        ("7B", 7),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("2w", 1209600), ("45", 45)]
)
def test_parse_age(text, expected):
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "5 parsecs", "-3d"])
def test_bad_values_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_size(text)
    with pytest.raises(UsageError):
        parse_age(text)


def test_format_size():
    assert format_size(512) == "512 B"
    assert format_size(5 * 2**30) == "5.0 GiB"


def test_prune_trims_the_events_log(tmp_path):
    store = CacheStore(tmp_path)
    for i in range(12_000):
        store.record_event("hit" if i % 2 else "miss", key=f"{i:064x}", saved_s=1.0)
    before = store.stats()
    store.prune()
    after = store.stats()
    assert (tmp_path / "events.log").stat().st_size <= 256 * 1024
    assert after.hits + after.misses == before.hits + before.misses  # the recent window is kept
