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


# --- YOLO26: an end-to-end head (one-to-many and one-to-one branches), no DFL, Proto26, RLE keypoints -------------

ANCHORS_64 = 8 * 8 + 4 * 4 + 2 * 2


@pytest.fixture
def model26(tiny_model26):
    import copy

    model = copy.deepcopy(tiny_model26)
    yield model


def test_yolo26_train_mode_returns_both_branches_raw(model26):
    from mttrain.nn.head import MultiTask26

    head = model26.model[-1]
    assert isinstance(head, MultiTask26) and head.reg_max == 1 and model26.stride.tolist() == [8.0, 16.0, 32.0]
    model26.train()
    out = model26(torch.zeros(2, 3, 64, 64))
    assert set(out) == {"one2many", "one2one"}
    for branch in out.values():
        assert branch["boxes"].shape == (2, 4, ANCHORS_64)  # ltrb distances, no DFL bins
        assert branch["scores"].shape == (2, 2, ANCHORS_64)
        assert branch["mask_coefficient"].shape == (2, 32, ANCHORS_64)
        assert branch["kpts"].shape == (2, 15, ANCHORS_64)
        assert branch["kpts_sigma"].shape == (2, 10, ANCHORS_64)  # RLE's sigma_x, sigma_y per keypoint
        proto, semantic = branch["proto"]  # Proto26 in training: prototypes and semantic logits
        assert proto.shape == (2, 32, 16, 16) and semantic.shape == (2, 2, 8, 8)
    assert not out["one2one"]["proto"][0].requires_grad  # one-to-one learns from detached prototypes


@pytest.mark.parametrize("end2end, shape", [(False, (1, 4 + 2 + 32 + 15, ANCHORS_64)), (True, (1, ANCHORS_64, 6 + 32 + 15))],
                         ids=["one2many-rows-for-nms", "one2one-topk-rows"])
def test_yolo26_eval_mode_rows_of_either_branch(model26, end2end, shape):
    model26.eval()
    model26.end2end = end2end
    (y, proto), raw = model26(torch.zeros(1, 3, 64, 64))
    assert y.shape == shape and proto.shape == (1, 32, 16, 16)
    assert "one2one" in raw and "kpts_sigma" not in raw["one2one"]  # sigma only in training
    visibility = (y[0, :, 6 + 32 + 2 :: 3] if end2end else y[0, 4 + 2 + 32 + 2 :: 3])
    assert ((visibility >= 0) & (visibility <= 1)).all()


@pytest.mark.parametrize("end2end", [False, True], ids=["one2many", "one2one"])
def test_yolo26_fuse_keeps_one_branch_and_nothing_training_only(model26, end2end):
    model26.eval()
    model26.end2end = end2end
    fused = model26.fuse(verbose=False)
    head = fused.model[-1]
    kept = {name for name, module in head.named_children() if module is not None}
    names = ("cv2", "cv3", "cv4", "cv5", "cv5_kpts")
    expected = {f"one2one_{n}" for n in names} if end2end else set(names)
    assert kept == expected | {"proto", "dfl"}
    assert head.flow_model is None and head.proto.semseg is None
    assert getattr(head, "cv5_sigma", None) is None and getattr(head, "one2one_cv5_sigma", None) is None
    assert fused.end2end is end2end
    (y, _), _ = fused(torch.zeros(1, 3, 64, 64))
    assert y.shape[-1 if end2end else 1] == (6 if end2end else 4 + 2) + 32 + 15


def test_yolo26_export_mode_end2end_rows(model26):
    model26.eval()
    model26.end2end = True
    head = model26.model[-1]
    head.export = True
    try:
        y, proto = model26(torch.zeros(1, 3, 64, 64))
        assert y.shape == (1, ANCHORS_64, 6 + 32 + 15) and proto.shape == (1, 32, 16, 16)
    finally:
        head.export = False


@pytest.mark.parametrize("name, scale", [(f"yolo26{s}-multitask.yaml", s) for s in "nslmx"])
def test_every_yolo26_scale_resolves_by_name(name, scale):
    path, found_scale = resolve_model_yaml(name)
    assert path.name == "yolo26-multitask.yaml" and found_scale == scale


def test_yolo26_scales_as_ultralytics_yolo26_seg():
    """Same backbone and neck as ultralytics' yolo26n/s-seg at each scale (the head differs by the keypoint branch)."""
    from ultralytics.nn.tasks import SegmentationModel

    for scale in "ns":
        ours = MultiTaskModel(f"yolo26{scale}-multitask.yaml", nc=2, data_kpt_shape=(5, 3), verbose=False)
        theirs = SegmentationModel(f"yolo26{scale}-seg.yaml", nc=2, verbose=False)
        body = lambda m: [(k, v.shape) for k, v in m.state_dict().items() if not k.startswith(f"model.{len(m.model) - 1}.")]
        assert body(ours) == body(theirs), scale


def test_scale_gradient_keeps_the_value_and_scales_the_gradient():
    from mttrain.nn.head import scale_gradient

    x = torch.randn(3, 4, requires_grad=True)
    y = scale_gradient(x, 0.3)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 0.3))


def _keypoint_gradient_into_features(head, scale: float) -> list[torch.Tensor]:
    head.train()
    head.keypoint_feature_gradient = scale
    torch.manual_seed(0)
    x = [torch.randn(1, c, s, s, requires_grad=True) for c, s in zip(head.ch_in, (8, 4, 2))]
    head.forward_head(x, None, None, None, head.cv5)["kpts"].square().sum().backward()
    return [f.grad for f in x]


def test_keypoint_loss_reaches_the_shared_features_at_the_head_s_scale(tiny_model):
    """The keypoint branch's gradient into the neck features is keypoint_feature_gradient times the full one,
    its own weights get the full gradient, and nothing changes in eval mode."""
    head = tiny_model.model[-1]
    head.ch_in = tuple(seq[0].conv.in_channels for seq in head.cv2)
    full = _keypoint_gradient_into_features(head, 1.0)
    weight_full = head.cv5[0][2].weight.grad.clone()
    head.zero_grad()
    half = _keypoint_gradient_into_features(head, 0.5)
    for a, b in zip(full, half):
        assert torch.allclose(b, 0.5 * a, rtol=1e-5, atol=1e-8) and a.abs().sum() > 0
    assert torch.allclose(head.cv5[0][2].weight.grad, weight_full, rtol=1e-5)
    head.eval()
    x = [torch.randn(1, c, s, s) for c, s in zip(head.ch_in, (8, 4, 2))]
    head.keypoint_feature_gradient = 0.5
    with torch.no_grad():
        a = head.forward_head(x, None, None, None, head.cv5)["kpts"]
        head.keypoint_feature_gradient = 1.0
        assert torch.equal(a, head.forward_head(x, None, None, None, head.cv5)["kpts"])
    del head.keypoint_feature_gradient  # back to the class's value
    tiny_model.train()


def test_yolo26_keypoint_loss_reaches_the_shared_features_at_the_head_s_scale(model26):
    """MultiTask26 as MultiTask: the one-to-many keypoint branch's gradient into the neck features is
    keypoint_feature_gradient times the full one; its own weights get the full gradient."""
    head = model26.model[-1]
    head.train()
    ch = tuple(seq[0].conv.in_channels for seq in head.cv2)

    def gradients(scale: float):
        head.zero_grad()
        head.keypoint_feature_gradient = scale
        torch.manual_seed(0)
        x = [torch.randn(1, c, s, s, requires_grad=True) for c, s in zip(ch, (8, 4, 2))]
        head.forward_head(x, None, None, None, head.cv5, head.cv5_kpts, head.cv5_sigma)["kpts"].square().sum().backward()
        return [f.grad for f in x], head.cv5_kpts[0].weight.grad.clone()

    try:
        (full, weight_full), (quarter, weight_quarter) = gradients(1.0), gradients(0.25)
    finally:
        del head.keypoint_feature_gradient  # back to the class's value
    for a, b in zip(full, quarter):
        assert torch.allclose(b, 0.25 * a, rtol=1e-5, atol=1e-8) and a.abs().sum() > 0
    assert torch.allclose(weight_quarter, weight_full, rtol=1e-5)
