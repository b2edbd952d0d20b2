"""Convert, merge and check from Python: ``python examples/data_from_python.py OUT``.

The same library functions the ``mtdata`` commands call: write a synthetic COCO dataset,
convert it to a pose and a segment dataset, merge those into one multitask dataset and check it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mtdata.check.dataset import check_dataset
from mtdata.convert.dataset import convert_coco
from mtdata.merge.dataset import merge_datasets
from mtdata.synth import write_synth


def main(out: Path) -> None:
    files = write_synth(out / "coco", images=16, size=128, seed=0)
    annotations = [files["train"], files["val"]]
    for task in ("pose", "segment"):
        report = convert_coco(annotations, out / task, images_dir=out / "coco" / "images", task=task, overwrite=True)
        print(f"{task:<8} {report.rows} rows, left out: {dict(report.skip_counts())}")
    merged = merge_datasets(out / "pose", out / "segment", out / "multitask", overwrite=True)
    print(f"merged   {merged.matched} pose rows paired with masks -> {merged.out}")
    result = check_dataset(out / "multitask" / "data.yaml")
    errors = [f for f in result.findings if f.severity.value == "error"]
    print(f"check    {len(result.findings)} findings, {len(errors)} errors")
    for finding in result.findings[:5]:
        print(f"  {finding.file}:{finding.line}  {finding.rule}  {finding.message}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "example-data"))
