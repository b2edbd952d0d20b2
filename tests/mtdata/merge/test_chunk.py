"""``mtdata.merge.chunk``: the chunk-wide pairing is the per-image ``match_boxes`` assignment."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtdata.formats.yolo.blocks import RowBlock
from mtdata.geometry import boxes_iou
from mtdata.merge.chunk import match_rows
from mtdata.merge.match import match_boxes


@st.composite
def boxes(draw, n):
    out = []
    for _ in range(n):
        x, y = draw(st.integers(0, 8)), draw(st.integers(0, 8))
        out.append([x / 10, y / 10, (x + draw(st.integers(1, 4))) / 10, (y + draw(st.integers(1, 4))) / 10])
    return np.array(out, dtype=float).reshape(n, 4)


@st.composite
def chunks(draw):
    """Pose and mask rows of a few images, in file order; masks have polygons, poses visible keypoints."""
    files = draw(st.integers(1, 4))
    pose_files = sorted(draw(st.lists(st.integers(0, files - 1), max_size=8)))
    mask_files = sorted(draw(st.lists(st.integers(0, files - 1), max_size=8)))
    pose_xyxy, mask_xyxy = draw(boxes(len(pose_files))), draw(boxes(len(mask_files)))
    keypoints = np.zeros((len(pose_files), 2, 3))
    for i, (x1, y1, x2, y2) in enumerate(pose_xyxy):
        keypoints[i, :, 0] = x1 + (x2 - x1) * np.array([0.2, 0.7])
        keypoints[i, :, 1] = y1 + (y2 - y1) * np.array([0.3, 0.8])
        keypoints[i, :, 2] = 2
    triangles = np.array([[(x1, y1), (x2, y1), (x1, y2)] for x1, y1, x2, y2 in mask_xyxy]).reshape(-1, 2)
    texts = [" ".join(f"{v:.6g}" for v in xy.reshape(-1)).encode() for xy in triangles.reshape(-1, 3, 2)]
    n_pose, n_mask = len(pose_files), len(mask_files)
    pose = RowBlock(np.array(pose_files, dtype=np.int64), np.zeros(n_pose, np.int64), pose_xyxy, np.zeros(n_pose + 1, np.int64),
                    np.zeros((0, 2)), keypoints, np.arange(1, n_pose + 1), text=[b""] * n_pose)
    seg = RowBlock(np.array(mask_files, dtype=np.int64), np.zeros(n_mask, np.int64), mask_xyxy, np.arange(0, 3 * n_mask + 1, 3),
                   triangles, np.zeros((n_mask, 0, 3)), np.arange(1, n_mask + 1), text=texts)
    return files, pose, seg, draw(st.sampled_from([0.3, 0.5, 0.7]))


@settings(max_examples=300, deadline=None)
@given(chunks())
def test_match_rows_equals_match_boxes_per_image(chunk):
    files, pose, seg, threshold = chunk
    p_rows, q_rows = np.arange(len(pose)), np.arange(len(seg))
    got = match_rows(pose, seg, p_rows, q_rows, threshold, files)
    got_pairs = sorted(zip(got.pose.tolist(), got.mask.tolist()))
    want_pairs, want_best, want_masks = [], np.zeros(len(pose)), np.zeros(len(pose), dtype=int)
    for f in range(files):
        a, b = np.flatnonzero(pose.image == f), np.flatnonzero(seg.image == f)
        r = match_boxes(pose.xyxy[a], seg.xyxy[b], threshold, a_keypoints=pose.keypoints[a], b_polygons=[seg.polygon(j) for j in b])
        want_pairs += [(int(a[i]), int(b[j])) for i, j in r.pairs.tolist()]
        want_best[a] = r.best_iou_a
        want_masks[a] = len(b)
    assert got_pairs == sorted(want_pairs)
    assert np.allclose(got.best_iou, want_best)
    assert got.masks_in_image.tolist() == want_masks.tolist()
    assert np.allclose(sorted(got.iou), sorted(boxes_iou(pose.xyxy[[p for p, _ in got_pairs]], seg.xyxy[[q for _, q in got_pairs]]).diagonal()) if got_pairs else [])


@pytest.mark.parametrize(("chosen", "threads"), [(None, "1"), ("2", "2")], ids=["default", "the user's choice"])
def test_a_worker_gives_polars_one_thread_unless_the_user_chose(chosen, threads):
    # In a fresh interpreter: polars fixes its thread count when it first starts its pool.
    env = {k: v for k, v in os.environ.items() if k != "POLARS_MAX_THREADS"} | ({"POLARS_MAX_THREADS": chosen} if chosen else {})
    code = "from mtdata.merge.chunk import prepare_worker; prepare_worker(); import polars; print(polars.thread_pool_size())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == threads
