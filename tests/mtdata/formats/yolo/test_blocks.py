"""``mtdata.formats.yolo.blocks``: the chunk parser agrees with the foundation's ``parse_label_text`` row for row."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mtdata.formats.yolo.blocks import absent_keypoints_text, read_pose_block, read_segment_block
from mtdata.formats.yolo.rows import LabelLayout, parse_label_text

K = 2
# Six decimals are within half their last digit of the value; 0.0859375 -> 0.085938 is that half exactly,
# and its binary difference is a hair above 5e-7 (found by hypothesis in CI).
SIX_DECIMALS = 5e-7 + 1e-12
# Values a label file may hold: inside [0, 1], at its edges, in the band the parser clips, beyond it, not finite.
VALUES = st.one_of(
    st.floats(0, 1), st.sampled_from([0.0, 1.0, -0.004, 1.009, -0.3, 1.7, float("nan"), float("inf")]),
)
CLASSES = st.sampled_from(["0", "1", "1.0", "2", "-1", "0.5", "x"])


def _token(draw, value) -> str:
    return draw(st.sampled_from([f"{value:.6g}", repr(value), f"{value:.3f}"]))


@st.composite
def pose_lines(draw, dims: int):
    tokens = [draw(CLASSES)] + [_token(draw, draw(VALUES)) for _ in range(4)]
    for _ in range(K):
        tokens += [_token(draw, draw(VALUES)) for _ in range(2)]
        if dims == 3:
            tokens.append(draw(st.sampled_from(["0", "1", "2", "2", "2.0", "3"])))
    return _damaged(draw, tokens)


@st.composite
def segment_lines(draw):
    tokens = [draw(CLASSES)] + [_token(draw, draw(VALUES)) for _ in range(2 * draw(st.integers(3, 6)))]
    return _damaged(draw, tokens)


def _damaged(draw, tokens: list[str]) -> str:
    """Sometimes one token too few, one too many, a token numpy and float() read differently, or odd spacing."""
    damage = draw(st.sampled_from(["none"] * 8 + ["short", "long", "odd token", "spaces", "leading space"]))
    if damage == "short":
        tokens = tokens[:-1]
    elif damage == "long":
        tokens = tokens + ["0.5"]
    elif damage == "odd token":
        # a word; two numbers glued; numpy's nan(...); digits float() reads and numpy does not
        tokens[draw(st.integers(0, len(tokens) - 1))] = draw(st.sampled_from(["abc", "0.5-0.25", "nan(1)", "0_5", "\u0661", "0x1p-1"]))
    line = ("  \t" if damage == "spaces" else " ").join(tokens)
    return " " + line if damage == "leading space" else line


def files(lines):
    """Chunks of label texts (None: no file), some with blank lines."""
    ending = st.sampled_from(["\n", "\n", "\n", "\r\n", "\x0c"])  # \x0c: a line break for str.splitlines() only
    text = st.tuples(st.lists(st.one_of(lines, st.just(""), st.just("   ")), max_size=6), ending, st.booleans()).map(
        lambda parts: parts[1].join(parts[0]) + (parts[1] if parts[2] else "")
    )
    return st.lists(st.one_of(st.none(), text), min_size=1, max_size=5)


def encoded(texts: list[str | None]) -> list[bytes | None]:
    """Texts as merge_chunk reads them from label files."""
    return [None if text is None else text.encode("utf-8") for text in texts]


def reference(texts, layout):
    """Rows and problems of each file by the foundation parser."""
    rows, problems = [], []
    for f, text in enumerate(texts):
        if text is None:
            continue
        parsed = parse_label_text(text, layout, f"f{f}.txt")
        problems += [(p.file, p.line, p.kind) for p in parsed.problems]
        rows += [(f, line, row) for line, row in zip(parsed.lines, parsed.rows)]
    return rows, problems


def triples(text: str) -> np.ndarray:
    return np.array(text.split(), dtype=float).reshape(-1, 3)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([2, 3]).flatmap(lambda dims: st.tuples(st.just(dims), files(pose_lines(dims)))))
@example(case=(2, ["0 0 0 0 0 0 0 0 0\n0 0 0 1 1 0 0 0.0859375 -0.004"]))  # a clipped row rewritten at a half
def test_pose_block_matches_the_foundation(case):
    dims, texts = case
    layout = LabelLayout("pose", num_classes=2, num_keypoints=K, keypoint_dims=dims)
    problems: list[dict] = []
    block = read_pose_block(encoded(texts), [f"f{f}.txt" for f in range(len(texts))], layout, problems)
    rows, want_problems = reference(texts, layout)
    assert [(p["file"], p["line"], p["kind"]) for p in problems] == want_problems
    assert list(zip(block.image.tolist(), block.source_ids.tolist())) == [(f, line) for f, line, _ in rows]
    assert block.class_id.tolist() == [row.class_id for _, _, row in rows]
    for i, (_, _, row) in enumerate(rows):
        cx, cy, w, h = row.box_cxcywhn
        assert np.allclose(block.xyxy[i], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        want = row.keypoints_xyn.copy()
        if dims == 2:  # a 2-D (0, 0) is an absent point
            want[np.all(want[:, :2] == 0, axis=1), 2] = 0
        labeled = want[:, 2] > 0
        assert np.array_equal(block.keypoints[i][labeled], want[labeled])
        assert np.array_equal(block.keypoints[i][:, 2], want[:, 2])
        written = triples(block.text[i].decode())
        # Kept rows are their tokens; rows the parser clipped are rewritten in the foundation's 6 decimals.
        assert np.allclose(written[labeled], want[labeled], rtol=0, atol=SIX_DECIMALS)
        assert (written[~labeled] == 0).all()


@settings(max_examples=300, deadline=None)
@given(files(segment_lines()))
def test_segment_block_matches_the_foundation(texts):
    layout = LabelLayout("segment", num_classes=2)
    problems: list[dict] = []
    block = read_segment_block(encoded(texts), [f"f{f}.txt" for f in range(len(texts))], layout, problems)
    rows, want_problems = reference(texts, layout)
    assert [(p["file"], p["line"], p["kind"]) for p in problems] == want_problems
    assert list(zip(block.image.tolist(), block.source_ids.tolist())) == [(f, line) for f, line, _ in rows]
    assert block.class_id.tolist() == [row.class_id for _, _, row in rows]
    for i, (_, _, row) in enumerate(rows):
        assert np.array_equal(block.xyxy[i], np.concatenate([row.polygon_xyn.min(0), row.polygon_xyn.max(0)]))
        assert np.array_equal(block.polygon(i), row.polygon_xyn)  # the parser's points, not the text written back


def test_valid_rows_keep_their_tokens():
    layout = LabelLayout("segment", num_classes=1)
    block = read_segment_block([b"0 0.1 0.2  0.30000 0.4 0.5 0.6\n"], ["a.txt"], layout, [])
    assert block.text == [b"0.1 0.2 0.30000 0.4 0.5 0.6"]
    pose = LabelLayout("pose", num_classes=1, num_keypoints=2, keypoint_dims=3)
    block = read_pose_block([b"0 0.5 0.5 0.2 0.2 0.45 0.5 2 0.7 0.9 0\n"], ["a.txt"], pose, [])
    assert block.text == [f"0.45 0.5 2 {absent_keypoints_text(1)}".encode()]  # an unlabeled point loses its coordinates


def test_empty_chunk():
    layout = LabelLayout("pose", num_classes=1, num_keypoints=K)
    block = read_pose_block([None, b"", b"\n\n"], [None, "a", "b"], layout, [])
    assert len(block) == 0 and block.keypoints.shape == (0, K, 3)


def test_clean_files_never_need_the_row_parser(monkeypatch):
    from mtdata.formats.yolo import blocks as merge_rows

    def refuse(*args, **kwargs):
        raise AssertionError("parse_label_text called for a clean file")

    monkeypatch.setattr(merge_rows, "parse_label_text", refuse)
    seg = read_segment_block([b"0 0 0 1 0 1 1\n1 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n"], ["a"], LabelLayout("segment", num_classes=2), [])
    assert seg.xyxy.tolist() == [[0, 0, 1, 1], [0.1, 0.1, 0.2, 0.2]]
    pose = read_pose_block([b"1 0.5 0.5 1 1 0 0 0 1 1 1\n"], ["a"], LabelLayout("pose", num_classes=2, num_keypoints=K), [])
    assert pose.xyxy.tolist() == [[0, 0, 1, 1]] and pose.keypoints[0, :, 2].tolist() == [0, 1]


def test_a_token_numpy_reads_as_two_numbers_does_not_shift_the_others():
    """ "0.5-0.25" is two numbers to numpy and none to float(): the chunk must still agree with the parser."""
    layout = LabelLayout("segment", num_classes=1)
    texts = [b"0 0.1 0.1 0.5-0.25 0.2 0.3 0.3\n", b"0  0.1 0.1 0.2 0.1 0.2 0.2\n", b" 0 0.6 0.6 0.7 0.6 0.7 0.7\n"]
    problems: list[dict] = []
    block = read_segment_block(texts, ["a", "b", "c"], layout, problems)
    assert [(p["file"], p["line"], p["kind"]) for p in problems] == [("a", 1, "non_numeric")]
    assert block.image.tolist() == [1, 2]
    assert block.xyxy.tolist() == [[0.1, 0.1, 0.2, 0.2], [0.6, 0.6, 0.7, 0.7]]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["0", "1.5", " ", " ", "\n", "\n", "\t", "\r", "\x00", "\x0c", "\x1f", "\x7f", "\u00e9"]), min_size=1, max_size=12))
def test_the_chunk_wide_plain_check_is_the_per_file_rule(pieces):
    from mtdata.formats.yolo.blocks import _is_plain, _is_plain_blob, _layout

    text = "".join(pieces).encode("utf-8")
    blob, u8, spaces, ends, _ = _layout([text])
    assert _is_plain_blob(blob, u8, spaces, ends) == _is_plain(text)
