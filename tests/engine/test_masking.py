"""Masking is streaming-safe and covers base64 and URL-encoded forms."""

from __future__ import annotations

import base64
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from buildyard.engine.masking import Masker

SECRET = "s3cr3t-P@ss/word+42"


def feed_all(masker: Masker, chunks: list[bytes]) -> bytes:
    return b"".join(masker.feed(c) for c in chunks) + masker.flush()


@settings(max_examples=200)
@given(
    before=st.binary(max_size=40).filter(lambda b: b"***" not in b),
    after=st.binary(max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
)
def test_secret_split_across_any_writes_is_masked(before: bytes, after: bytes, cuts: list[int]) -> None:
    data = before + SECRET.encode() + after
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    out = feed_all(Masker([SECRET]), chunks)
    assert SECRET.encode() not in out
    assert b"***" in out
    assert out.startswith(before[: max(0, len(before) - len(SECRET))])


@settings(max_examples=100)
@given(prefix=st.binary(max_size=10), suffix=st.binary(max_size=10))
def test_base64_of_text_containing_the_secret_is_masked(prefix: bytes, suffix: bytes) -> None:
    encoded = base64.b64encode(prefix + SECRET.encode() + suffix)
    out = feed_all(Masker([SECRET]), [encoded[:7], encoded[7:]])
    assert out != encoded and b"***" in out


def test_url_encoded_and_multiline_forms() -> None:
    masker = Masker([SECRET, "line-one-secret\nline-two-secret"])
    out = feed_all(masker, [f"url={quote(SECRET, safe='')}&x=1\nline-two-secret\n".encode()])
    assert out == b"url=***&x=1\n***\n"


def test_no_secrets_passes_through_untouched() -> None:
    masker = Masker([])
    assert not masker.active
    assert masker.feed(b"abc") == b"abc" and masker.flush() == b""


def test_mask_text_for_messages() -> None:
    assert Masker(["hunter2"]).mask_text("password is hunter2!") == "password is ***!"
