"""YOLO rows and label files: round trips, a table of good and bad rows, property tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtdata.formats.yolo.rows import (
    COORD_TOLERANCE,
    LabelLayout,
    RowProblem,
    YoloRow,
    coordinate_chars,
    coordinate_text,
    parse_label_text,
    parse_row,
    read_label_file,
    rows_to_batch,
    rows_to_labels,
)
from mtdata.records import ImageLabels
from tests.mtdata.factories import make_labels, square
from tests.mtdata.oracles import format_label_text, labels_to_rows

W, H = 200, 100
DETECT = LabelLayout("detect", num_classes=3)
SEGMENT = LabelLayout("segment", num_classes=3)
POSE = LabelLayout("pose", num_classes=2, num_keypoints=2, keypoint_dims=3)
POSE_2D = LabelLayout("pose", num_classes=2, num_keypoints=2, keypoint_dims=2)
MULTITASK = LabelLayout("multitask", num_classes=3, num_keypoints=2, keypoint_classes=frozenset({0}))
LAYOUTS = {"detect": DETECT, "segment": SEGMENT, "pose": POSE, "pose2d": POSE_2D, "multitask": MULTITASK}


def sample_labels() -> ImageLabels:
    """Three objects in a 200x100 image: a keypoint class (0) with one absent point, and two plain ones."""
    polygons = [
        np.array([[10.5, 10.25], [60, 12], [55, 70.125], [12, 66]]),
        square(120, 20, 30),
        np.array([[0, 0], [200, 0], [100, 100]], dtype=float),  # touches the image border
    ]
    keypoints = np.zeros((3, 2, 3))
    keypoints[0] = [[20.5, 30.25, 2], [0, 0, 0]]
    keypoints[1] = [[130, 30, 1], [140, 40, 2]]  # class 1: only pose rows carry these
    return make_labels(polygons, [0, 1, 2], keypoints, resolution_wh=(W, H))


def round_trip(labels: ImageLabels, layout: LabelLayout, tmp_path) -> ImageLabels:
    text = format_label_text(labels_to_rows(labels, layout), layout)
    path = tmp_path / "labels" / "img.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    parsed = read_label_file(path, layout)
    assert parsed.problems == []
    assert parsed.lines == list(range(1, len(labels) + 1))
    return rows_to_labels(parsed.rows, labels.resolution_wh, layout.num_keypoints)


def test_round_trip_detect(tmp_path):
    labels = sample_labels()
    back = round_trip(labels, DETECT, tmp_path)
    assert back.class_id.tolist() == labels.class_id.tolist()
    np.testing.assert_allclose(back.xyxy, labels.xyxy, atol=1e-6 * W)


def test_round_trip_segment(tmp_path):
    labels = sample_labels()
    back = round_trip(labels, SEGMENT, tmp_path)
    assert back.class_id.tolist() == labels.class_id.tolist()
    for got, want in zip(back.polygons, labels.polygons):
        np.testing.assert_allclose(got, want, atol=1e-6 * W)
    np.testing.assert_allclose(back.xyxy, labels.xyxy, atol=1e-6 * W)  # boxes rebuilt from polygons


@pytest.mark.parametrize("layout", [POSE, POSE_2D], ids=["xyv", "xy"])
def test_round_trip_pose(layout, tmp_path):
    labels = sample_labels()[np.array([0, 1])]
    back = round_trip(labels, layout, tmp_path)
    np.testing.assert_allclose(back.xyxy, labels.xyxy, atol=1e-6 * W)
    if layout.keypoint_dims == 3:
        np.testing.assert_allclose(back.keypoints, labels.keypoints, atol=1e-6 * W)
    else:  # 2-D rows have no visibility: labeled points come back visible
        labeled = labels.keypoints[..., 2] > 0
        np.testing.assert_allclose(back.keypoints[..., :2], labels.keypoints[..., :2], atol=1e-6 * W)
        assert (back.keypoints[..., 2] == 2).all() and labeled.sum() == 3


def test_round_trip_multitask(tmp_path):
    labels = sample_labels()
    back = round_trip(labels, MULTITASK, tmp_path)
    assert back.class_id.tolist() == [0, 1, 2]
    for got, want in zip(back.polygons, labels.polygons):
        np.testing.assert_allclose(got, want, atol=1e-6 * W)
    np.testing.assert_allclose(back.keypoints[0], labels.keypoints[0], atol=1e-6 * W)
    assert not back.keypoints[1:].any()  # classes without keypoints carry none


def test_multitask_text_layout():
    """Keypoints first, then the polygon; absent keypoints are 0 0 0; other classes are plain polygons."""
    text = format_label_text(labels_to_rows(sample_labels(), MULTITASK), MULTITASK).splitlines()
    first = text[0].split()
    assert first[0] == "0" and len(first) == 1 + 2 * 3 + 4 * 2
    assert [float(v) for v in first[4:7]] == [0, 0, 0] and first[6] == "0"  # visibility is an integer
    assert first[1] == "0.102500" and first[3] == "2"  # coordinates: 6 decimals
    assert len(text[1].split()) == 1 + 4 * 2


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5, 0.1234565, 0.9999996, 4e-7, 5e-7, 2.0, 9.25, 1 / 3])
def test_bulk_and_single_coordinates_are_spelled_alike(value):
    assert coordinate_chars(np.array([value])).tobytes().decode() == coordinate_text(value) + " "
    assert abs(float(coordinate_text(value)) - value) <= 5e-7 + 1e-12


@given(st.lists(st.floats(0, 9.99999, allow_nan=False), max_size=50))
def test_coordinate_chars_property(values):
    text = coordinate_chars(np.array(values, dtype=float)).tobytes().decode()
    assert text.split() == [coordinate_text(v) for v in values]


def test_coordinate_text_outside_the_unit_range():
    assert coordinate_text(-0.25) == "-0.250000" and coordinate_text(12.5) == "12.500000"
    assert coordinate_text(-1e-9) == "0.000000"


def test_labels_to_rows_clips_to_the_image():
    labels = make_labels([np.array([[-5.0, -5.0], [250, 0], [100, 120]])], resolution_wh=(W, H))
    (row,) = labels_to_rows(labels, SEGMENT)
    assert row.polygon_xyn.min() == 0.0 and row.polygon_xyn.max() == 1.0


def test_label_only_records_use_unit_resolution():
    rows = [parse_row("1 0.1 0.2 0.3 0.2 0.2 0.4", SEGMENT)]
    labels = rows_to_labels(rows, (1, 1), 0)
    np.testing.assert_allclose(labels.polygons[0], [[0.1, 0.2], [0.3, 0.2], [0.2, 0.4]])
    np.testing.assert_allclose(labels.xyxy[0], [0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize(
    "layout, text",
    [
        pytest.param(DETECT, "0 0.5 0.5 0.2 0.4\n\n2 0.25 0.75 0.5 0.5\n", id="detect-boxes"),
        pytest.param(POSE, "1 0.5 0.5 0.2 0.4 0.5 0.5 2 0 0 0\n", id="pose-box-and-keypoints"),
        pytest.param(MULTITASK, "0 0.1 0.1 2 0 0 0 0.1 0.1 0.3 0.1 0.2 0.4\n1 0.5 0.5 0.9 0.5 0.7 0.9 0.5 0.9\n", id="multitask-by-class"),
        pytest.param(SEGMENT, "", id="no-row"),
    ],
)
def test_rows_to_batch_is_the_batch_of_what_rows_to_labels_returns(layout, text):
    parsed = parse_label_text(text, layout)
    batch = rows_to_batch(parsed.rows, (W, H), layout.num_keypoints, parsed.lines)
    assert batch.image.tolist() == [0] * len(parsed.rows) and batch.source_ids.tolist() == parsed.lines
    labels = rows_to_labels(parsed.rows, (W, H), layout.num_keypoints)
    view = batch.for_image(0, (W, H))
    np.testing.assert_array_equal(view.xyxy, labels.xyxy)
    np.testing.assert_array_equal(view.keypoints, labels.keypoints)
    for i, row in enumerate(parsed.rows):
        expected = np.zeros((0, 2)) if row.polygon_xyn is None else row.polygon_xyn * (W, H)
        np.testing.assert_array_equal(batch.polygon(i), expected)
        np.testing.assert_array_equal(labels.polygons[i], expected)


# --- a table of good and bad rows -------------------------------------------------------

GOOD_ROWS = [
    pytest.param(DETECT, "2 0.5 0.5 0.2 0.4", {"box": [0.5, 0.5, 0.2, 0.4]}, id="detect"),
    pytest.param(DETECT, "1\t0.5  0.5 0.2 0.4  ", {"box": [0.5, 0.5, 0.2, 0.4]}, id="detect-tabs-and-spaces"),
    pytest.param(DETECT, "1.0 0.5 0.5 0.2 0.4", {"class": 1}, id="class-written-as-float"),
    pytest.param(DETECT, "0 1.005 0.5 0.2 0.4", {"box": [1.0, 0.5, 0.2, 0.4]}, id="within-tolerance-clipped"),
    pytest.param(SEGMENT, "0 0.1 0.1 0.9 0.1 0.5 0.9", {"polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]}, id="segment-triangle"),
    pytest.param(SEGMENT, "0 -0.005 0 1 0 1 1", {"polygon": [[0, 0], [1, 0], [1, 1]]}, id="segment-clipped"),
    pytest.param(POSE, "1 0.5 0.5 0.2 0.2 0.4 0.4 2 0 0 0", {"keypoints": [[0.4, 0.4, 2], [0, 0, 0]]}, id="pose-absent-point"),
    pytest.param(POSE, "0 0.5 0.5 0.2 0.2 0.4 0.4 1 0.6 0.6 2", {"keypoints": [[0.4, 0.4, 1], [0.6, 0.6, 2]]}, id="pose-hidden"),
    pytest.param(POSE_2D, "0 0.5 0.5 0.2 0.2 0.4 0.4 0.6 0.6", {"keypoints": [[0.4, 0.4, 2], [0.6, 0.6, 2]]}, id="pose-2d"),
    pytest.param(MULTITASK, "0 0.4 0.4 2 0 0 0 0.1 0.1 0.9 0.1 0.5 0.9",
                 {"keypoints": [[0.4, 0.4, 2], [0, 0, 0]], "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]}, id="multitask-keypoint-class"),
    pytest.param(MULTITASK, "2 0.1 0.1 0.9 0.1 0.5 0.9", {"keypoints": None, "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]},
                 id="multitask-plain-class-short"),
    pytest.param(MULTITASK, "1 0.1 0.1 0.9 0.1 0.5 0.9 0.2 0.2 0.3 0.3 0.4 0.4 0.5 0.5",
                 {"keypoints": None, "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9], [0.2, 0.2], [0.3, 0.3], [0.4, 0.4], [0.5, 0.5]]},
                 id="multitask-plain-class-as-long-as-a-keypoint-row"),
]


@pytest.mark.parametrize("layout, line, expected", GOOD_ROWS)
def test_good_rows(layout, line, expected):
    row = parse_row(line, layout)
    assert isinstance(row, YoloRow)
    if "class" in expected:
        assert row.class_id == expected["class"]
    if "box" in expected:
        np.testing.assert_allclose(row.box_cxcywhn, expected["box"])
    if "polygon" in expected:
        np.testing.assert_allclose(row.polygon_xyn, expected["polygon"])
    if "keypoints" in expected:
        if expected["keypoints"] is None:
            assert row.keypoints_xyn is None
        else:
            np.testing.assert_allclose(row.keypoints_xyn, expected["keypoints"])


BAD_ROWS = [
    pytest.param(DETECT, "", "wrong_count", id="empty"),
    pytest.param(DETECT, "a 0.5 0.5 0.2 0.2", "non_numeric", id="class-not-a-number"),
    pytest.param(DETECT, "0 0.5 0,5 0.2 0.2", "non_numeric", id="decimal-comma"),
    pytest.param(DETECT, "1.5 0.5 0.5 0.2 0.2", "class_not_integer", id="class-fraction"),
    pytest.param(DETECT, "-1 0.5 0.5 0.2 0.2", "class_not_integer", id="class-negative"),
    pytest.param(DETECT, "nan 0.5 0.5 0.2 0.2", "class_not_integer", id="class-nan"),
    pytest.param(DETECT, "3 0.5 0.5 0.2 0.2", "class_out_of_range", id="class-out-of-range"),
    pytest.param(DETECT, "0 0.5 inf 0.2 0.2", "not_finite", id="inf"),
    pytest.param(SEGMENT, "0 0.5 nan 0.2 0.2 0.3 0.3", "not_finite", id="nan"),
    pytest.param(DETECT, "0 0.5 0.5 0.2", "wrong_count", id="detect-3-values"),
    pytest.param(DETECT, "0 0.5 0.5 0.2 0.2 0.1", "wrong_count", id="detect-5-values"),
    pytest.param(DETECT, "0 1.02 0.5 0.2 0.2", "out_of_bounds", id="beyond-tolerance"),
    pytest.param(DETECT, "0 0.5 0.5 0 0.2", "zero_area", id="zero-width"),
    pytest.param(SEGMENT, "0 0.1 0.1 0.2 0.2 0.3", "wrong_count", id="segment-odd"),
    pytest.param(SEGMENT, "0 0.1 0.1 0.2 0.2", "too_few_points", id="segment-2-points"),
    pytest.param(SEGMENT, "0 0.1 -0.5 0.2 0.2 0.3 0.3", "out_of_bounds", id="segment-negative"),
    pytest.param(POSE, "0 0.5 0.5 0.2 0.2 0.4 0.4 2", "wrong_count", id="pose-one-keypoint-missing"),
    pytest.param(POSE, "0 0.5 0.5 0.2 0.2 0.4 0.4 3 0.6 0.6 2", "bad_visibility", id="pose-visibility-3"),
    pytest.param(POSE, "0 0.5 0.5 0.2 0.2 0.4 0.4 0.5 0.6 0.6 2", "bad_visibility", id="pose-visibility-fraction"),
    pytest.param(POSE, "0 0.5 0.5 0.2 0.2 1.4 0.4 2 0.6 0.6 2", "kpt_out_of_bounds", id="pose-labeled-point-outside"),
    pytest.param(POSE_2D, "0 0.5 0.5 0.2 0.2 0.4 0.4 2 0.6 0.6 2", "wrong_count", id="pose-2d-given-visibility"),
    pytest.param(MULTITASK, "0 0.1 0.1 0.9 0.1 0.5 0.9", "wrong_count", id="multitask-keypoint-class-without-keypoints"),
    pytest.param(MULTITASK, "0 0.4 0.4 2 0 0 0 0.1 0.1 0.9 0.1 0.5", "wrong_count", id="multitask-odd-polygon"),
    pytest.param(MULTITASK, "0 0.4 0.4 2 0 0 0 0.1 0.1 0.9 0.1", "wrong_count", id="multitask-2-point-polygon"),
    pytest.param(MULTITASK, "0 0.4 0.4 7 0 0 0 0.1 0.1 0.9 0.1 0.5 0.9", "bad_visibility", id="multitask-visibility-7"),
    pytest.param(MULTITASK, "1 0.1 0.1 0.9 0.1", "too_few_points", id="multitask-plain-class-2-points"),
]


@pytest.mark.parametrize("layout, line, kind", BAD_ROWS)
def test_bad_rows(layout, line, kind):
    with pytest.raises(RowProblem) as raised:
        parse_row(line, layout)
    assert raised.value.kind == kind
    assert str(raised.value)  # a message a person can read


def test_parse_label_text_collects_problems_with_file_and_line():
    text = "0 0.1 0.1 0.9 0.1 0.5 0.9\n\n   \n5 0.1 0.1 0.9 0.1 0.5 0.9\n1 0.1 0.1 0.9 0.1 0.5 0.9\nx\n"
    parsed = parse_label_text(text, SEGMENT, "labels/a.txt")
    assert [r.class_id for r in parsed.rows] == [0, 1]
    assert parsed.lines == [1, 5]
    assert [(p.kind, p.line, p.file) for p in parsed.problems] == [
        ("class_out_of_range", 4, "labels/a.txt"), ("non_numeric", 6, "labels/a.txt"),
    ]
    assert str(parsed.problems[0]).startswith("labels/a.txt:4: ")


def test_multitask_image_of_short_plain_polygons_parses_fully():
    """The fork guesses a row's layout from its length and drops such images; the class decides here."""
    layout = LabelLayout("multitask", num_classes=2, num_keypoints=17, keypoint_classes=frozenset({0}))
    text = "\n".join(["1 0.1 0.1 0.2 0.1 0.15 0.2", "1 0.5 0.5 0.6 0.5 0.6 0.6 0.5 0.6"] * 3)
    parsed = parse_label_text(text, layout)
    assert parsed.problems == [] and len(parsed.rows) == 6
    assert all(r.keypoints_xyn is None and len(r.polygon_xyn) in (3, 4) for r in parsed.rows)
    # and a keypoint-class row in the same file takes its 17 x 3 keypoints first
    row = parse_row("0 " + " ".join(["0.5 0.5 2"] * 17) + " 0.1 0.1 0.2 0.1 0.15 0.2", layout)
    assert row.keypoints_xyn.shape == (17, 3) and len(row.polygon_xyn) == 3


# --- property tests ---------------------------------------------------------------------

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
positive_unit = st.floats(min_value=1e-6, max_value=1.0, allow_nan=False)


@st.composite
def keypoints(draw, k: int):
    vis = draw(st.lists(st.sampled_from([0, 1, 2]), min_size=k, max_size=k))
    points = [[draw(unit), draw(unit), v] if v else [0.0, 0.0, 0] for v in vis]
    return np.array(points, dtype=np.float64).reshape(k, 3)


@st.composite
def rows(draw, layout: LabelLayout):
    class_id = draw(st.integers(0, layout.num_classes - 1))
    polygon = box = kpts = None
    if layout.task in ("segment", "multitask"):
        n = draw(st.integers(3, 40))
        polygon = np.array(draw(st.lists(unit, min_size=2 * n, max_size=2 * n))).reshape(n, 2)
    if layout.task in ("detect", "pose"):
        box = np.array([draw(unit), draw(unit), draw(positive_unit), draw(positive_unit)])
    if layout.task == "pose" or (layout.task == "multitask" and class_id in layout.keypoint_classes):
        kpts = draw(keypoints(layout.num_keypoints))
        if layout.keypoint_dims == 2:
            kpts[:, 2] = 2  # 2-D rows cannot say anything else
            kpts[:, :2] = np.array([[draw(unit), draw(unit)] for _ in range(layout.num_keypoints)])
    return YoloRow(class_id, polygon_xyn=polygon, box_cxcywhn=box, keypoints_xyn=kpts)


def assert_rows_close(got: YoloRow, want: YoloRow) -> None:
    assert got.class_id == want.class_id
    for name in ("polygon_xyn", "box_cxcywhn", "keypoints_xyn"):
        a, b = getattr(got, name), getattr(want, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_format_then_parse_round_trips(layout, data):
    row = data.draw(rows(layout))
    line = layout.format(row)
    assert "\n" not in line
    assert_rows_close(parse_row(line, layout), row)


tokens = st.one_of(
    st.integers(-3, 5).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-0.1, 1.1).map(lambda v: f"{v:.4g}"),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "0x10", "1,5", "", "-", ".", "e", "１", "٣", "0.5e", "+1", "1_0"]),
    st.text(max_size=6),
)


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
@settings(max_examples=300, deadline=None)
@given(parts=st.lists(tokens, max_size=30), sep=st.sampled_from([" ", "  ", "\t", " \t "]))
def test_any_tokens_give_a_row_or_a_row_problem(layout, parts, sep):
    line = sep.join(parts)
    try:
        row = parse_row(line, layout)
    except RowProblem as problem:
        assert problem.kind in {
            "non_numeric", "class_not_integer", "class_out_of_range", "not_finite", "wrong_count", "too_few_points",
            "out_of_bounds", "kpt_out_of_bounds", "bad_visibility", "zero_area",
        }
        return
    assert 0 <= row.class_id < layout.num_classes
    for values in (row.polygon_xyn, row.box_cxcywhn):
        if values is not None:
            assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0
    if row.keypoints_xyn is not None:
        labeled = row.keypoints_xyn[:, 2] > 0
        assert np.isin(row.keypoints_xyn[:, 2], [0, 1, 2]).all()
        assert (row.keypoints_xyn[labeled, :2] >= 0).all() and (row.keypoints_xyn[labeled, :2] <= 1).all()


def test_tolerance_is_small():
    assert 0 < COORD_TOLERANCE <= 0.02
