"""``mtdata.merge.write``: the text of ``unmatched.json``, one list element a line."""

from __future__ import annotations

import json

from mtdata.merge.write import _json_rows


def test_json_rows_puts_each_list_element_on_its_own_line():
    data = {"iou_threshold": 0.5, "reasons": {"a": "b"}, "kpt_rows": ['{"line": 1}', '{"line": 2}'], "kpt_only_images": [],
            "seg_only_images": ["train/b", "train/c"]}
    text = _json_rows(data, encoded=frozenset({"kpt_rows"}))
    assert text == (
        '{\n'
        ' "iou_threshold": 0.5,\n'
        ' "reasons": {"a": "b"},\n'
        ' "kpt_rows": [\n  {"line": 1},\n  {"line": 2}\n ],\n'
        ' "kpt_only_images": [],\n'
        ' "seg_only_images": [\n  "train/b",\n  "train/c"\n ]\n'
        '}\n'
    )
    assert json.loads(text) == data | {"kpt_rows": [{"line": 1}, {"line": 2}]}
