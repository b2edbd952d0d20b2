"""mtdata.check.verify: one image and one label file, as check and the trainer see them."""

from __future__ import annotations

import io
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mtdata.check.rules import RULES
from mtdata.check.verify import RULE_OF_KIND, duplicate_rows, rule_of_problem, verify_image, verify_label_file
from mtdata.errors import Severity
from mtdata.formats.yolo.rows import LabelLayout, RowProblem

REPO = Path(__file__).resolve().parents[3]


def _pixels(w: int = 40, h: int = 30) -> np.ndarray:
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (5, 5), 0)


def _encoded(ext: str, w: int = 40, h: int = 30) -> bytes:
    return cv2.imencode(ext, _pixels(w, h))[1].tobytes()


def _exif_image(orientation: int, fmt: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    Image.fromarray(_pixels()[..., ::-1]).save(out, fmt, exif=exif)
    return out.getvalue()


IMAGE_CASES = [
    # (id, file name, bytes, error/warning rule or None, resolution (w, h) or None)
    ("jpeg", "a.jpg", _encoded(".jpg"), None, (40, 30)),
    ("png", "a.png", _encoded(".png"), None, (40, 30)),
    ("jpeg cut in half", "a.jpg", _encoded(".jpg", 200, 150)[:1500], "image_corrupt", None),
    ("jpeg without its last 2 bytes", "a.jpg", _encoded(".jpg")[:-2], "image_corrupt", None),
    ("png cut short", "a.png", _encoded(".png")[:-100], "image_corrupt", None),
    ("png without IEND", "a.png", _encoded(".png")[:-12], "image_corrupt", None),
    ("not an image", "a.jpg", b"hello, I am text", "image_unreadable", None),
    ("empty file", "a.jpg", b"", "image_zero_size", None),
    ("8x8 pixels", "a.png", _encoded(".png", 8, 8), "image_too_small", (8, 8)),
    ("EXIF rotated 90 degrees", "a.jpg", _exif_image(6), "image_exif_rotated", (30, 40)),
    ("EXIF mirrored", "a.jpg", _exif_image(2), "image_exif_rotated", (40, 30)),
    ("EXIF upright", "a.jpg", _exif_image(1), None, (40, 30)),
    ("PNG with eXIf rotated", "a.png", _exif_image(8, "PNG"), "image_exif_rotated", (30, 40)),
    ("WebP with EXIF rotated", "a.webp", _exif_image(6, "WEBP"), "image_exif_rotated", (30, 40)),
]


@pytest.mark.parametrize("name,data,rule,resolution", [c[1:] for c in IMAGE_CASES], ids=[c[0] for c in IMAGE_CASES])
def test_verify_image(tmp_path, name, data, rule, resolution):
    path = tmp_path / name
    path.write_bytes(data)
    check = verify_image(path)
    assert [f.rule for f in check.findings] == ([rule] if rule else [])
    assert all(f.file == str(path) and f.line is None for f in check.findings)
    assert check.resolution_wh == resolution
    assert check.ok == (rule is None or RULES[rule].severity is not Severity.ERROR)


def test_missing_image_is_unreadable(tmp_path):
    check = verify_image(tmp_path / "nope.jpg")
    assert [f.rule for f in check.findings] == ["image_unreadable"] and not check.ok


def test_digest_is_the_content(tmp_path):
    a, b, c = tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"
    a.write_bytes(_encoded(".jpg"))
    b.write_bytes(_encoded(".jpg"))
    c.write_bytes(_encoded(".jpg", 41, 30))
    assert verify_image(a).digest is None
    assert verify_image(a, digest=True).digest == verify_image(b, digest=True).digest != verify_image(c, digest=True).digest


MULTITASK = LabelLayout("multitask", num_classes=2, num_keypoints=2, keypoint_classes=frozenset({0}))
DETECT = LabelLayout("detect", num_classes=2)
GOOD = "0 0.2 0.2 2 0.25 0.25 1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3"
SQUARE = "0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3"

ROW_CASES = [
    # (id, layout, bad row, rule)
    ("token not a number", MULTITASK, "1 0.1 0.1 x 0.1 0.3 0.3", "row_non_numeric"),
    ("class 1.5", MULTITASK, f"1.5 {SQUARE}", "row_class_not_integer"),
    ("class -1", MULTITASK, f"-1 {SQUARE}", "row_class_not_integer"),
    ("class not in names", MULTITASK, f"2 {SQUARE}", "row_class_out_of_range"),
    ("NaN", MULTITASK, "1 0.1 nan 0.3 0.1 0.3 0.3", "row_not_finite"),
    ("odd polygon", MULTITASK, "1 0.1 0.1 0.3 0.1 0.3", "row_wrong_count"),
    ("keypoint class, keypoints only", MULTITASK, "0 0.2 0.2 2 0.25 0.25 1", "row_wrong_count"),
    ("two points", MULTITASK, "1 0.1 0.1 0.3 0.1", "row_too_few_points"),
    ("polygon beyond tolerance", MULTITASK, "1 0.1 0.1 1.2 0.1 0.3 0.3", "coord_out_of_bounds"),
    ("visibility 3", MULTITASK, f"0 0.2 0.2 3 0.25 0.25 1 {SQUARE}", "kpt_bad_visibility"),
    ("labeled keypoint outside", MULTITASK, f"0 1.5 0.2 2 0.25 0.25 1 {SQUARE}", "kpt_out_of_image"),
    ("detect box of zero width", DETECT, "1 0.5 0.5 0 0.2", "zero_area"),
    ("polygon of collinear points", MULTITASK, "1 0.1 0.1 0.2 0.2 0.3 0.3", "zero_area"),
    ("polygon crossing itself", MULTITASK, "1 0.1 0.1 0.5 0.3 0.5 0.1 0.1 0.4", "polygon_self_intersecting"),
    ("underscore in a number", MULTITASK, "1 0.1_5 0.1 0.3 0.1 0.3 0.3", "row_non_numeric"),
    ("Arabic-Indic digits", MULTITASK, "1 \u0660.\u0661 0.1 0.3 0.1 0.3 0.3", "row_non_numeric"),
    ("detect row too long", DETECT, "1 0.5 0.5 0.1 0.2 0.3", "row_wrong_count"),
]


@pytest.mark.parametrize("layout,row,rule", [c[1:] for c in ROW_CASES], ids=[c[0] for c in ROW_CASES])
def test_bad_row_is_found_at_its_line(tmp_path, layout, row, rule):
    good = GOOD if layout is MULTITASK else "1 0.5 0.5 0.1 0.2"
    path = tmp_path / "a.txt"
    path.write_text(f"{good}\n\n{row}\n")
    parsed, findings = verify_label_file(path, layout)
    assert [(f.rule, f.line, f.file) for f in findings] == [(rule, 3, str(path))]
    assert len(parsed.rows) == 1 and parsed.lines == [1]  # the usable rows are what the trainer keeps


def test_unreadable_label_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xff\xfe\xfa not utf-8")
    parsed, findings = verify_label_file(path, MULTITASK)
    assert [f.rule for f in findings] == ["label_unreadable"] and not parsed.rows


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(("\ufeff" + GOOD + "\n").encode())
    parsed, findings = verify_label_file(path, MULTITASK)
    assert not findings and len(parsed.rows) == 1


def test_duplicate_rows(tmp_path):
    path = tmp_path / "a.txt"
    # equal values written differently are still duplicates
    path.write_text(f"{GOOD}\n1 {SQUARE}\n{GOOD.replace('0.2 0.2', '0.20 0.200')}\n1 {SQUARE}\n")
    parsed, findings = verify_label_file(path, MULTITASK)
    assert [(f.rule, f.line, f.message) for f in findings] == [
        ("row_duplicate", 3, "repeats line 1"), ("row_duplicate", 4, "repeats line 2"),
    ]
    assert duplicate_rows(parsed) == [(2, 0), (3, 1)]


def test_every_row_problem_kind_has_a_rule():
    # the parser's kinds, read from its source so that a new kind cannot go unmapped
    source = (REPO / "mtdata" / "formats" / "yolo" / "rows.py").read_text()
    kinds = set(re.findall(r'RowProblem\(\s*"(\w+)"', source))
    assert kinds and kinds <= set(RULE_OF_KIND)
    assert set(RULE_OF_KIND.values()) <= set(RULES)
    assert rule_of_problem(RowProblem("some_new_kind", "x")) == "row_invalid"


KIND_RULES = [
    # (RowProblem.kind, the rule check reports): ids are interface, written out here
    ("non_numeric", "row_non_numeric"),
    ("class_not_integer", "row_class_not_integer"),
    ("class_out_of_range", "row_class_out_of_range"),
    ("not_finite", "row_not_finite"),
    ("wrong_count", "row_wrong_count"),
    ("too_few_points", "row_too_few_points"),
    ("out_of_bounds", "coord_out_of_bounds"),
    ("kpt_out_of_bounds", "kpt_out_of_image"),
    ("bad_visibility", "kpt_bad_visibility"),
    ("zero_area", "zero_area"),
    ("self_intersecting", "polygon_self_intersecting"),
    ("a_kind_nobody_mapped", "row_invalid"),
]


@pytest.mark.parametrize("kind, rule", KIND_RULES, ids=[k for k, _ in KIND_RULES])
def test_rule_comes_from_the_kind_alone(kind, rule):
    # the message never picks the rule: a keypoint's kind is kpt_out_of_bounds, whatever the text says
    for message in ("keypoint coordinate 1.5 is outside [0, 1]", "polygon coordinate 1.5 is outside [0, 1]", ""):
        assert rule_of_problem(RowProblem(kind, message)) == rule
    assert kind in RULE_OF_KIND or rule == "row_invalid"


def test_every_kind_is_in_the_table_and_found_on_a_real_row():
    assert set(RULE_OF_KIND) <= {k for k, _ in KIND_RULES}
    assert set(RULE_OF_KIND.values()) <= {case[3] for case in ROW_CASES}
