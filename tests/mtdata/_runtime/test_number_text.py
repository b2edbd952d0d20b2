"""``parse_numbers``: polars and numpy read the same numbers; anything else is refused, never misread."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mtdata._runtime.number_text as number_text
from mtdata._runtime.number_text import parse_numbers


def numbers_text(values: np.ndarray, separator: str = ",") -> bytes:
    return separator.join(json.dumps(v) for v in values.tolist()).encode()


@pytest.fixture(params=["polars", "numpy"])
def reader(request, monkeypatch):
    """Run each test with polars reading, and with polars refusing everything (numpy reads)."""
    if request.param == "numpy":
        monkeypatch.setattr(number_text, "_polars_numbers", lambda *args: None)
    return request.param


def test_exact_values_across_magnitudes(reader):
    rng = np.random.default_rng(0)
    values = rng.random(5000) * 10.0 ** rng.integers(-300, 300, 5000) * rng.choice([-1, 1], 5000)
    parsed = parse_numbers(numbers_text(values), b",", len(values))
    assert parsed is not None and np.array_equal(parsed, values)  # bit for bit, as json reads them


@pytest.mark.parametrize(("text", "separator", "count", "drop", "expected"), [
    (b"1,2,3", b",", 3, b"", [1, 2, 3]),
    (b"1,2,3,", b",", 3, b"", [1, 2, 3]),  # a closing separator
    (b"0.5\n-1e-3\n7\n", b"\n", 3, b"", [0.5, -1e-3, 7]),
    (b"[[1, 2],[3,4]],[[5, 6]]", b",", 6, b"[] ", [1, 2, 3, 4, 5, 6]),  # JSON lists, brackets dropped
    (b"", b",", 0, b"", []),
], ids=["plain", "closing-separator", "newlines", "json-lists", "empty"])
def test_reads(reader, text, separator, count, drop, expected):
    assert parse_numbers(text, separator, count, drop=drop).tolist() == expected


@pytest.mark.parametrize(("text", "count"), [
    (b"1,2,3", 2),  # more numbers than counted
    (b"1,2,3", 4),  # fewer
    (b"1,,2", 2),  # an empty field
    (b"1,x,2", 3),  # not a number
    (b"1,0x10", 2),  # hexadecimal
    (b"1,2 3", 2),  # another separator
    (b"", 1),
], ids=["more", "fewer", "empty-field", "word", "hex", "space", "empty-text"])
def test_refuses(reader, text, count):
    assert parse_numbers(text, b",", count) is None


def test_pieces_join_seamlessly(reader, monkeypatch):
    """A long text goes over in pieces cut at separators; the numbers come out whole and in order."""
    monkeypatch.setattr(number_text, "PIECE_BYTES", 7)
    values = np.round(np.random.default_rng(1).random(500), 6)
    text = numbers_text(values)
    assert np.array_equal(parse_numbers(text, b",", len(values)), values)
    assert parse_numbers(text + b",x", b",", len(values) + 1) is None  # a bad last piece still fails the whole


def test_blank_lines_are_skipped_only_when_asked(reader):
    assert parse_numbers(b"1\n\n2\n", b"\n", 2, skip_empty=True).tolist() == [1, 2]
    assert parse_numbers(b"1,,2", b",", 2) is None


def _reader_state_and_numbers(text: bytes) -> tuple[bool, list[float]]:
    return number_text._polars_usable, parse_numbers(text, b",", 3).tolist()


@pytest.mark.timeout(60)  # a hang fails here instead of stalling the suite
def test_a_child_forked_after_polars_reads_with_numpy_and_does_not_hang():
    """polars' thread pool does not survive a fork: the child's first polars call would hang."""
    import multiprocessing

    from mtdata._runtime.forking import can_fork

    if not can_fork():
        pytest.skip("needs fork")
    parse_numbers(b"1,2", b",", 2)  # the parent has used polars
    pool = multiprocessing.get_context("fork").Pool(1)
    try:  # a timeout and terminate(), not a pool that waits for its worker: a hung child must not hang the test
        assert pool.apply_async(_reader_state_and_numbers, (b"1,2,3",)).get(timeout=30) == (False, [1.0, 2.0, 3.0])
    finally:
        pool.terminate()
        pool.join()
    assert number_text._polars_usable  # the parent still reads with polars
