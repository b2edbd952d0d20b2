"""Weight transfer from multitask, segment and pose checkpoints of the same family and scale."""

import pytest
import torch
from ultralytics.nn.tasks import PoseModel, SegmentationModel

from mttrain.nn.model import MultiTaskModel
from mttrain.transfer import load_weights, read_checkpoint_model


def save(model, path):
    torch.save({"model": model}, path)
    return path


def fresh():
    return MultiTaskModel("yolov8n-multitask.yaml", nc=2, data_kpt_shape=(5, 3), verbose=False)


def test_segment_checkpoint_loads_backbone_neck_box_class_and_mask_branch(tmp_path):
    seg = SegmentationModel("yolov8n-seg.yaml", nc=2, verbose=False)
    target = fresh()
    count = load_weights(target, save(seg, tmp_path / "seg.pt"), verbose=False)
    head = target.model[-1]
    assert count == len(seg.state_dict())  # every segment tensor has a home
    assert torch.equal(head.cv4[0][0].conv.weight, seg.model[-1].cv4[0][0].conv.weight)  # mask coefficients
    assert torch.equal(head.proto.cv1.conv.weight, seg.model[-1].proto.cv1.conv.weight)


def test_pose_checkpoint_keypoint_branch_lands_in_cv5(tmp_path):
    pose = PoseModel("yolov8n-pose.yaml", nc=2, data_kpt_shape=(5, 3), verbose=False)
    target = fresh()
    before = target.model[-1].cv4[0][0].conv.weight.clone()
    assert target.model[-1].keypoint_width == 64 > pose.model[-1].cv4[0][0].conv.out_channels == 16  # ours is wider
    count = load_weights(target, save(pose, tmp_path / "pose.pt"), verbose=False)
    head = target.model[-1]
    assert head.keypoint_width == 16  # rebuilt at the pose head's width, so its trained branch loads whole
    assert count == len(pose.state_dict())
    for ours, theirs in zip(head.cv5.parameters(), pose.model[-1].cv4.parameters()):
        assert torch.equal(ours, theirs)
    assert torch.equal(head.cv4[0][0].conv.weight, before)  # mask branch untouched
    assert torch.equal(target.model[0].conv.weight, pose.model[0].conv.weight)


def test_multitask_checkpoint_loads_everything(tmp_path):
    source = fresh()
    target = fresh()
    assert load_weights(target, save(source, tmp_path / "mt.pt"), verbose=False) == len(target.state_dict())


def test_missing_weights_file_fails_at_once_without_network(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        read_checkpoint_model(tmp_path / "yolov8n-seg.pt")


def test_a_multitask_checkpoint_with_a_narrower_keypoint_branch_loads_whole(tmp_path):
    """Checkpoints made before the branch was widened keep their trained keypoint branch."""
    source = fresh()
    source.model[-1].set_keypoint_width(16)
    target = fresh()
    assert load_weights(target, save(source, tmp_path / "old.pt"), verbose=False) == len(target.state_dict())
    assert target.model[-1].keypoint_width == 16
    with torch.no_grad():
        image = torch.rand(1, 3, 64, 64)
        (ours, _), _ = target.eval()(image)  # ((detections, protos), raw outputs)
        (theirs, _), _ = source.eval()(image)
        assert torch.allclose(ours, theirs)


def fresh26():
    return MultiTaskModel("yolo26n-multitask.yaml", nc=2, data_kpt_shape=(5, 3), verbose=False)


def test_yolo26_segment_checkpoint_fills_everything_but_the_keypoint_branch(tmp_path):
    seg = SegmentationModel("yolo26n-seg.yaml", nc=2, verbose=False)
    target = fresh26()
    count = load_weights(target, save(seg, tmp_path / "seg26.pt"), verbose=False)
    head = target.model[-1]
    assert count == len(seg.state_dict())  # every Segment26 tensor has a home, one2one_ copies and Proto26 included
    assert torch.equal(head.one2one_cv4[0][0].conv.weight, seg.model[-1].one2one_cv4[0][0].conv.weight)
    assert torch.equal(head.proto.semseg[0].conv.weight, seg.model[-1].proto.semseg[0].conv.weight)


def test_yolo26_pose_checkpoint_keypoint_branch_lands_in_cv5(tmp_path):
    pose = PoseModel("yolo26n-pose.yaml", nc=2, data_kpt_shape=(5, 3), verbose=False)
    target = fresh26()
    before = target.model[-1].cv4[0][0].conv.weight.clone()
    load_weights(target, save(pose, tmp_path / "pose26.pt"), verbose=False)
    head, theirs = target.model[-1], pose.model[-1]
    for ours, source in (("cv5", "cv4"), ("cv5_kpts", "cv4_kpts"), ("cv5_sigma", "cv4_sigma"),
                         ("one2one_cv5", "one2one_cv4"), ("one2one_cv5_kpts", "one2one_cv4_kpts")):
        assert all(torch.equal(a, b) for a, b in zip(getattr(head, ours).state_dict().values(),
                                                     getattr(theirs, source).state_dict().values())), ours
    assert all(torch.equal(a, b) for a, b in zip(head.flow_model.state_dict().values(),
                                                 theirs.flow_model.state_dict().values()))
    assert torch.equal(head.cv4[0][0].conv.weight, before)  # mask branch untouched
