"""Job keys and explanations: pure functions, checked by examples and properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from buildyard.cache.keys import (
    CacheMissReason,
    KeyManifest,
    MissDetail,
    build_key_manifest,
    explain,
    secret_digest,
)

SALT = bytes(range(32))
D1, D2, D3 = "1" * 64, "2" * 64, "3" * 64


def _base(**overrides):
    kwargs = {
        "definition": {"commands": ["make"], "shell": "bash", "cwd": "pkg"},
        "env": {"MODE": "release"},
        "secrets": {"TOKEN": "s3cret-value"},
        "salt": SALT,
        "inputs": {"a.c": D1, "b.c": D2},
        "upstream": {"lib": D3},
        "global_inputs": {"package-lock.json": D1},
        "key_command_outputs": {"python --version": b"Python 3.11.7\n"},
    }
    kwargs.update(overrides)
    return build_key_manifest(**kwargs)


def test_key_is_stable_and_round_trips_through_json():
    m = _base()
    assert m.key() == _base().key()
    assert len(m.key()) == 64
    assert KeyManifest.from_json(m.to_json()) == m
    assert KeyManifest.from_json(m.to_json()).key() == m.key()


def test_secret_value_never_appears_in_the_manifest():
    m = _base()
    text = str(m.to_json())
    assert "s3cret-value" not in text
    assert m.secrets["TOKEN"] == secret_digest("s3cret-value", SALT)
    assert secret_digest("s3cret-value", bytes(32)) != m.secrets["TOKEN"]  # salted per store


def test_identical_manifests_explain_to_nothing_and_missing_entry_to_no_entry():
    assert explain(_base(), _base()) == []
    assert explain(None, _base()) == [MissDetail(CacheMissReason.NO_ENTRY)]


def test_each_kind_of_change_is_named():
    old = _base()
    new = _base(
        definition={"commands": ["make all"], "shell": "bash", "cwd": "pkg"},
        env={"MODE": "debug", "EXTRA": "1"},
        secrets={"TOKEN": "rotated"},
        inputs={"a.c": D2, "c.c": D3},
        upstream={"lib": D1},
        global_inputs={"package-lock.json": D2},
        key_command_outputs={"python --version": b"Python 3.12.0\n"},
    )
    assert new.key() != old.key()
    assert explain(old, new) == [
        MissDetail(CacheMissReason.DEFINITION_CHANGED, ("commands",)),
        MissDetail(CacheMissReason.ENV_CHANGED, ("EXTRA", "MODE", "TOKEN (secret)")),
        MissDetail(CacheMissReason.INPUT_CHANGED, ("a.c",)),
        MissDetail(CacheMissReason.INPUT_ADDED, ("c.c",)),
        MissDetail(CacheMissReason.INPUT_REMOVED, ("b.c",)),
        MissDetail(CacheMissReason.UPSTREAM_CHANGED, ("lib",)),
        MissDetail(CacheMissReason.GLOBAL_INPUT_CHANGED, ("package-lock.json",)),
        MissDetail(CacheMissReason.KEY_COMMAND_CHANGED, ("python --version",)),
    ]
    assert str(explain(old, new)[2]) == "input_changed: a.c"


_paths = st.dictionaries(st.text("abc/", min_size=1, max_size=6), st.sampled_from([D1, D2, D3]), max_size=6)


@given(_paths, _paths)
def test_keys_differ_exactly_when_explain_finds_a_reason(old_inputs, new_inputs):
    old = KeyManifest(definition={"c": 1}, inputs=old_inputs)
    new = KeyManifest(definition={"c": 1}, inputs=new_inputs)
    reasons = explain(old, new)
    assert (old.key() == new.key()) == (reasons == [])
    named = {n for d in reasons for n in d.names}
    assert named == {p for p in set(old_inputs) | set(new_inputs) if old_inputs.get(p) != new_inputs.get(p)}
