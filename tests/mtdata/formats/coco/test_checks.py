"""The checks a COCO file passes before anything is built from it: RLE counts, file names, ids, extents."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mtdata.formats.coco.checks import (
    MAX_MASK_PIXELS,
    extent_problem,
    file_name_problem,
    file_names_problems,
    rle_problem,
    rle_string_counts,
    split_name_problem,
)


def random_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=np.uint8)
    for _ in range(int(rng.integers(0, 5))):
        y, x = rng.integers(0, h), rng.integers(0, w)
        mask[y : y + int(rng.integers(1, h + 1)), x : x + int(rng.integers(1, w + 1))] ^= 1
    return mask


def runs_of(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed counts: runs of 0s and 1s, column by column, starting with 0s."""
    flat = mask.reshape(-1, order="F")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [len(flat)]])
    runs = np.diff(bounds).tolist()
    return runs if flat[0] == 0 else [0, *runs]


@pytest.mark.parametrize("seed", range(5))
def test_compressed_counts_decode_to_pycocotools_runs(seed):
    """200 random masks: the runs read from the string are the ones pycocotools encoded."""
    rng = np.random.default_rng(seed)
    for _ in range(40):
        h, w = int(rng.integers(1, 60)), int(rng.integers(1, 60))
        mask = random_mask(rng, h, w)
        encoded = mask_utils.encode(np.asfortranarray(mask))["counts"].decode()
        assert rle_string_counts(encoded).tolist() == runs_of(mask)
        assert rle_problem({"size": [h, w], "counts": encoded}, h, w) is None
        assert rle_problem({"size": [h, w], "counts": runs_of(mask)}, h, w) is None


def corrupt_runs(rng: np.random.Generator, runs: list[int], h: int, w: int) -> list:
    """Runs that no longer cover h x w exactly: one run changed, cut off, added, made negative or not an integer."""
    runs = list(runs)
    kind = int(rng.integers(0, 6))
    i = int(rng.integers(0, len(runs)))
    if kind == 0:
        runs[i] += int(rng.integers(1, 50)) * (1 if rng.random() < 0.5 or runs[i] < 50 else -1)
    elif kind == 1 and len(runs) > 1:
        runs = runs[: max(1, i)]
    elif kind == 2:
        runs.append(int(rng.integers(1, 9)))
    elif kind == 3:
        runs[i] = -runs[i] - 1
    elif kind == 4:
        runs[i] = runs[i] + 0.5
    else:
        runs[i] = True if runs[i] == 1 else str(runs[i])
    if all(type(r) is int and r >= 0 for r in runs) and sum(runs) == h * w:
        runs.append(1)  # the change happened to keep the sum (a cut-off run of 0): break it anyway
    return runs


@pytest.mark.parametrize("seed", range(5))
def test_runs_that_do_not_cover_the_mask_are_refused(seed):
    """Short, long, negative and non-integer runs, listed or compressed: pycocotools would read memory it never wrote."""
    rng = np.random.default_rng(100 + seed)
    for _ in range(40):
        h, w = int(rng.integers(2, 40)), int(rng.integers(2, 40))
        bad = corrupt_runs(rng, runs_of(random_mask(rng, h, w)), h, w)
        assert rle_problem({"size": [h, w], "counts": bad}, h, w) is not None, bad
        if all(type(r) is int and r >= 0 for r in bad):
            encoded = mask_utils.frPyObjects({"size": [h, w], "counts": bad}, h, w)["counts"].decode()
            assert rle_problem({"size": [h, w], "counts": encoded}, h, w) is not None, bad


@pytest.mark.parametrize(
    "segmentation, words",
    [
        ({"size": [8, 8], "counts": "0"}, "cover"),  # compressed, one empty run
        ({"size": [8, 8], "counts": "\x00\x01"}, "corrupt"),
        ({"size": [8, 8], "counts": "é"}, "corrupt"),
        ({"size": [8, 8], "counts": "_"}, "corrupt"),  # a continuation with nothing after it
        ({"size": [8, 8], "counts": "]]]]]]]]0"}, "corrupt"),  # a run of 9 groups: past pycocotools' shifts
        ({"size": [8, 8], "counts": None}, "list or a string"),
        ({"size": [8, 8], "counts": {"a": 1}}, "list or a string"),
        ({"size": [8], "counts": [64]}, "[height, width]"),
        ({"size": ["8", 8], "counts": [64]}, "[height, width]"),
        ({"size": [8, 9], "counts": [72]}, "not the image's"),
    ],
)
def test_rle_problems_are_named(segmentation, words):
    assert words in rle_problem(segmentation, 8, 8)


def test_masks_past_the_pixel_bound_are_not_decoded():
    side = int(MAX_MASK_PIXELS**0.5) + 1
    assert "larger than" in rle_problem({"size": [side, side], "counts": [side * side]}, side, side)


@pytest.mark.parametrize(
    "name, words",
    [
        ("a\nb.jpg", "control"), ("evil\n../../pwned.jpg", "control"), ("a\x00b.jpg", "control"), ("a\rb.jpg", "control"),
        ("tab\there.jpg", "control"), ("\x7f.jpg", "control"), ("", "names no file"), (".", "names no file"),
        ("..", "names no file"), ("sub/..", "names no file"), ("sub/", "names no file"), ("x" * 300 + ".jpg", "longer"),
        ("é" * 130 + ".jpg", "longer"), ("a" * 252 + ".jpg", "longer"), ("\ud800.jpg", "not valid text"),
    ],
)
def test_file_names_that_cannot_name_files(name, words):
    assert words in file_name_problem(name)
    assert words in file_names_problems(["fine.jpg", name, "also/fine.png"])[1]


@pytest.mark.parametrize("name", ["a.jpg", "sub/dir/a.jpg", "../a.jpg", "/abs/a.jpg", "a" * 251 + ".jpg", "é" * 125 + ".jpg",
                                  "a b.jpg", "...jpg", ".hidden", "noext", "日本.png"])
def test_file_names_that_can(name):
    assert file_name_problem(name) is None
    assert file_names_problems([name, "b.jpg"]) == {}


@pytest.mark.parametrize("seed", range(3))
def test_the_whole_list_check_agrees_with_one_name_at_a_time(seed):
    rng = np.random.default_rng(seed)
    alphabet = list("ab./\n\x00é") + ["..", "x" * 120]
    names = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 5)))) for _ in range(300)]
    assert file_names_problems(names) == {i: p for i, n in enumerate(names) if (p := file_name_problem(n))}


@pytest.mark.parametrize("split", ["", ".", "..", "a/b", "../x", "a\\b", "a\nb", "x" * 300])
def test_split_names_that_cannot_name_folders(split):
    assert split_name_problem(split) is not None


@pytest.mark.parametrize(
    "low, high, reason",
    [
        ((10, 10), (20, 20), None),
        ((-5, -5), (105, 85), None),  # a little past the edges: clipped
        ((1e308, 10), (1e308, 20), "out_of_image"),
        ((-101, 10), (20, 20), "out_of_image"),  # more than one width left of the image
        ((10, 10), (20, 161), "out_of_image"),
        ((120, 10), (130, 20), "out_of_image"),  # wholly right of the image
        ((10, -30), (20, -1), "out_of_image"),
        ((10, 10), (10 + 1e-5, 20), "bad_bbox"),  # thinner than 6 decimals of the width
        ((99.99999, 10), (130, 20), "bad_bbox"),  # inside the image, a sliver once clipped
    ],
)
def test_extents(low, high, reason):
    problem = extent_problem("bbox", low, high, 100, 80)
    assert (problem and problem[0]) == reason
