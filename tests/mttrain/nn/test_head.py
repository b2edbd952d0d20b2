"""Head and model: shapes in train, eval and export modes; shipped configs load by name."""

import pytest
import torch

from mttrain.nn.head import MultiTask
from mttrain.nn.model import MultiTaskModel, resolve_model_yaml


def test_train_mode_returns_every_raw_output(tiny_model):
    tiny_model.train()
    out = tiny_model(torch.zeros(2, 3, 64, 64))
    anchors = 8 * 8 + 4 * 4 + 2 * 2
    assert out["boxes"].shape == (2, 64, anchors)
    assert out["scores"].shape == (2, 2, anchors)
    assert out["mask_coefficient"].shape == (2, 32, anchors)
    assert out["kpts"].shape == (2, 15, anchors)
    assert out["proto"].shape == (2, 32, 16, 16)


def test_eval_mode_returns_decoded_rows_and_prototypes(tiny_model):
    tiny_model.eval()
    (y, proto), raw = tiny_model(torch.zeros(1, 3, 64, 64))
    assert y.shape == (1, 4 + 2 + 32 + 15, 84)
    assert proto.shape == (1, 32, 16, 16)
    visibility = y[:, 4 + 2 + 32 + 2 :: 3]
    assert ((visibility >= 0) & (visibility <= 1)).all()  # sigmoid applied
    assert isinstance(raw, dict)
    tiny_model.train()


def test_export_mode_returns_tensor_and_prototypes(tiny_model):
    head = tiny_model.model[-1]
    tiny_model.eval()
    head.export = True
    try:
        y, proto = tiny_model(torch.zeros(1, 3, 64, 64))
        assert y.shape == (1, 53, 84) and proto.shape == (1, 32, 16, 16)
    finally:
        head.export = False
        tiny_model.train()


def test_head_is_multitask_with_ultralytics_strides(tiny_model):
    assert isinstance(tiny_model.model[-1], MultiTask)
    assert tiny_model.stride.tolist() == [8.0, 16.0, 32.0]
    assert tiny_model.task == "multitask"


@pytest.mark.parametrize("name, scale", [(f"{family}{s}-multitask.yaml", s) for family in ("yolov8", "yolo11") for s in "nslmx"])
def test_every_shipped_scale_resolves_by_name(name, scale):
    path, found_scale = resolve_model_yaml(name)
    assert path.is_file() and found_scale == scale


def test_yolo11_builds():
    model = MultiTaskModel("yolo11n-multitask.yaml", nc=3, data_kpt_shape=(4, 3), verbose=False)
    assert isinstance(model.model[-1], MultiTask) and model.model[-1].kpt_shape == (4, 3)


def test_scale_changes_width():
    n = MultiTaskModel("yolov8n-multitask.yaml", nc=1, data_kpt_shape=(2, 3), verbose=False)
    s = MultiTaskModel("yolov8s-multitask.yaml", nc=1, data_kpt_shape=(2, 3), verbose=False)
    assert sum(p.numel() for p in s.parameters()) > 3 * sum(p.numel() for p in n.parameters())


def test_unknown_model_name_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="yolov8"):
        resolve_model_yaml("yolov9q-multitask.yaml")
