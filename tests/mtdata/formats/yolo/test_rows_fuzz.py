"""Fuzz: the YOLO label reader and the bulk readers that must agree with it, on files strangers write.

Seeded and bounded: a fixed list of cases (times MTDATA_FUZZ_CASES), each in a child process
with a memory limit and a deadline (tests/mtdata/fuzzing.py). The reader must turn every
non-blank line into a row or a problem with a short one-line message, never raise; merge's
chunk readers (mtdata.formats.yolo.blocks) must give the same rows and problems; the bulk writer
(mtdata.formats.yolo.bulk) must write rows the reader reads back.
"""

from __future__ import annotations

import numpy as np

from mtdata.check.verify import RULE_OF_KIND
from mtdata.formats.yolo.blocks import read_pose_block, read_segment_block
from mtdata.formats.yolo.rows import LabelLayout, parse_label_text
from tests.mtdata.fuzzing import FUZZ_SCALE, MESSAGE_LIMIT, hostile_label_text, report, run_cases

LAYOUTS = [
    LabelLayout("multitask", num_classes=3, num_keypoints=3, keypoint_classes=frozenset({0, 2})),
    LabelLayout("segment", num_classes=2),
    LabelLayout("pose", num_classes=2, num_keypoints=2, keypoint_dims=3),
    LabelLayout("pose", num_classes=1, num_keypoints=3, keypoint_dims=2),
    LabelLayout("detect", num_classes=2),
]


def _reader_problems(text: str, layout: LabelLayout) -> list[str]:
    parsed = parse_label_text(text, layout, "a.txt")
    out = []
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if sorted(parsed.lines + [p.line for p in parsed.problems]) != lines:
        out.append("a non-blank line is neither a row nor a problem")
    for p in parsed.problems:
        if p.kind not in RULE_OF_KIND or "\n" in p.message or len(p.message) > MESSAGE_LIMIT or p.file != "a.txt":
            out.append(f"line {p.line}: problem {p.kind!r} with a message of {len(p.message)} characters")
    text_lines = text.splitlines()
    for n in parsed.lines:  # the format's numbers are ASCII decimals: no "0.1_5", no Arabic-Indic digits
        odd = [t for t in text_lines[n - 1].split() if not t.isascii() or "_" in t]
        if odd:
            out.append(f"line {n}: read as a row with tokens {odd[:2]!r} that are not ASCII decimal numbers")
    for row in parsed.rows:
        labeled = row.keypoints_xyn[row.keypoints_xyn[:, 2] > 0, :2] if row.keypoints_xyn is not None else None
        for part in (row.polygon_xyn, row.box_cxcywhn, labeled):  # unlabeled points keep what they hold
            if part is not None and part.size and (not np.isfinite(part).all() or part.min() < 0 or part.max() > 1):
                out.append("a row holds a coordinate outside [0, 1]")
    return out


def _agreement_problems(texts: list[str], layout: LabelLayout) -> list[str]:
    """merge's chunk readers against the row parser, file by file."""
    read = read_pose_block if layout.task == "pose" else read_segment_block
    problems: list[dict] = []
    block = read([t.encode("utf-8") for t in texts], [f"f{f}.txt" for f in range(len(texts))], layout, problems)
    rows, want = [], []
    for f, text in enumerate(texts):
        parsed = parse_label_text(text, layout, f"f{f}.txt")
        want += [(p.file, p.line, p.kind) for p in parsed.problems]
        rows += [(f, line, row) for line, row in zip(parsed.lines, parsed.rows)]
    out = []
    if [(p["file"], p["line"], p["kind"]) for p in problems] != want:
        out.append(f"problems differ: {[(p['line'], p['kind']) for p in problems][:5]} vs {[(w[1], w[2]) for w in want][:5]}")
    if list(zip(block.image.tolist(), block.source_ids.tolist())) != [(f, n) for f, n, _ in rows]:
        out.append("rows differ")
    elif block.class_id.tolist() != [row.class_id for _, _, row in rows]:
        out.append("classes differ")
    elif layout.task == "segment":
        for i, (_, _, row) in enumerate(rows):
            if not np.allclose(block.polygon(i), row.polygon_xyn, rtol=0, atol=5.01e-7):  # rewritten rows: 6 decimals
                out.append(f"row {i}: polygon differs")
    return out


def test_fuzz_yolo_reader_and_bulk_readers():
    rng = np.random.default_rng(20240916)
    cases = []
    for case in range(150 * FUZZ_SCALE):
        layout = LAYOUTS[case % len(LAYOUTS)]
        cases.append((layout, [hostile_label_text(rng, layout) for _ in range(int(rng.integers(1, 4)))]))

    def check(case):
        layout, texts = case
        found = [p for t in texts for p in _reader_problems(t, layout)]
        if layout.task in ("segment", "pose"):
            found += _agreement_problems(texts, layout)
        return [f"{layout.task}: {p}" for p in found]

    failures = run_cases(cases, check, batch=25)
    report("yolo reader", failures, len(cases))
    assert not failures


def test_fuzz_bulk_writer_rows_read_back():
    """yolo_bulk.label_texts (convert's writer) on random objects, extreme coordinates included: rows read back."""
    from mtdata.formats.yolo.bulk import label_texts

    rng = np.random.default_rng(7)
    failures = []
    cases = 60 * FUZZ_SCALE
    for case in range(cases):
        task = ["multitask", "segment", "pose"][case % 3]
        m, k, images = int(rng.integers(1, 30)), 3, int(rng.integers(1, 5))
        wh = rng.integers(1, 5000, size=(images, 2)).astype(float)
        image_index = np.sort(rng.integers(0, images, m))
        sizes = rng.integers(3, 12, m)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        # convert's objects: boxes inside the image with a side of >= 1 pixel; polygons and keypoints
        # may reach outside it (clipped on the way out)
        xy = rng.uniform(-0.5, 1.5, size=(offsets[-1], 2)) * np.repeat(wh[image_index], sizes, axis=0)
        kpts = np.concatenate([rng.uniform(-0.2, 1.2, (m, k, 2)) * wh[image_index][:, None], rng.integers(0, 3, (m, k, 1))], axis=2)
        lo = rng.uniform(0, 0.5, (m, 2)) * wh[image_index]
        hi = lo + np.maximum(1.0, rng.uniform(0, 0.5, (m, 2)) * wh[image_index])
        texts = label_texts(task, image_index, images, wh[image_index], rng.integers(0, 2, m), np.concatenate([lo, hi], 1),
                            offsets, xy, kpts, frozenset({0}))
        layout = LabelLayout(task, num_classes=2, num_keypoints=0 if task == "segment" else k, keypoint_classes=frozenset({0}))
        for text in texts:
            parsed = parse_label_text(text.decode("ascii"), layout)
            if parsed.problems:
                failures.append(f"case {case} ({task}): {parsed.problems[0].kind}: {parsed.problems[0].message}")
                break
    report("bulk writer", failures, cases)
    assert not failures
