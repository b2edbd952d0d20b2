"""A dataset and a model's predictions in FiftyOne, from Python: ``python examples/fiftyone_predictions.py DATA.yaml MODEL.pt``.

Builds the FiftyOne dataset (ground truth with masks and keypoints linked per object, check
findings as tags), adds the model's predictions with an evaluation, and prints the samples with
the most false positives: what you would sort by in the App (``mtdata view`` opens it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mtdata.check.dataset import check_dataset
from mtdata.formats.yolo.data_yaml import read_data_yaml
from mtdata.view.dataset import build_dataset
from mtdata.view.predictions import EVAL_KEY, add_predictions, check_model_matches, evaluate, model_facts
from mttrain import MultiTaskYOLO
from mttrain.predict import masks_in_image


def main(data: Path, model_path: Path) -> None:
    config = read_data_yaml(data)
    findings = check_dataset(data).findings
    dataset = build_dataset(data, name="mt-example", findings=findings)
    model = MultiTaskYOLO(str(model_path))  # mtdata imports no model library: the model is handed in
    check_model_matches(model_path, *model_facts(model), config)
    count = add_predictions(dataset, model, config, imgsz=128, masks_in_image=masks_in_image)
    scores = evaluate(dataset, config)
    print(f"{dataset.name}: {len(dataset)} samples, {count} predicted objects, evaluation {scores}")
    for sample in dataset.sort_by(f"{EVAL_KEY}_fp", reverse=True).limit(3):
        print(f"  {Path(sample.filepath).name}  false positives {sample[f'{EVAL_KEY}_fp']}  tags {sample.tags}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
