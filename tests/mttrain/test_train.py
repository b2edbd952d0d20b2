"""Training end to end on data a user may really have: background images beside (or instead of) objects."""

import pytest

from mttrain import MultiTaskYOLO
from tests.mttrain.conftest import make_multitask_dataset


@pytest.fixture(scope="module")
def background_data(tmp_path_factory):
    """4 train images (1 with an empty label file, 1 without one) and 4 val images, all background."""
    data_yaml = make_multitask_dataset(tmp_path_factory.mktemp("mt-background"), images=4, size=64, seed=3)
    labels = data_yaml.parent / "labels"
    train = sorted((labels / "train").glob("*.txt"))
    train[0].write_text("")
    train[1].unlink()
    for file in (labels / "val").glob("*.txt"):
        file.write_text("")
    return data_yaml


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 4], ids=["background-only-batches", "mixed-batch"])
def test_background_images_train_and_an_all_background_val_split_scores_zero(batch, background_data, tmp_path):
    model = MultiTaskYOLO("yolov8n-multitask.yaml")
    model.train(data=str(background_data), epochs=1, imgsz=64, batch=batch, workers=0, device="cpu", mosaic=0.0,
                project=str(tmp_path), name="train", plots=False, verbose=False)
    metrics = model.trainer.metrics
    assert (tmp_path / "train" / "weights" / "last.pt").is_file()
    for key in ("metrics/mAP50-95(B)", "metrics/mAP50-95(M)", "metrics/mAP50-95(P)"):
        assert metrics[key] == 0.0, key
