"""The multitask loss: named parts, finite, falling on a tiny batch; keypoint terms only where they belong."""

import copy

import pytest
import torch

from mttrain._ultralytics import DEFAULT_CFG
from mttrain.nn.loss import LOSS_NAMES


def background_batch() -> dict:
    """Two 64-px images without objects (empty or missing label files), as the collate function gives them."""
    return {
        "img": torch.rand(2, 3, 64, 64),
        "cls": torch.zeros(0, 1),
        "bboxes": torch.zeros(0, 4),
        "batch_idx": torch.zeros(0),
        "masks": torch.zeros(2, 16, 16),  # overlap_mask: one index map per image, 0 = background
        "keypoints": torch.zeros(0, 5, 3),
    }


def make_batch(classes: list[int], with_points: bool = True) -> dict:
    """Two 64-px images, one square object each, class ids as given; keypoints at the square's corners."""
    n = len(classes)
    boxes = torch.tensor([[0.3, 0.3, 0.3, 0.3], [0.6, 0.6, 0.4, 0.4]])[:n]
    masks = torch.zeros(2, 16, 16)
    masks[0, 2:7, 2:7] = 1
    masks[1, 6:13, 6:13] = 1
    keypoints = torch.zeros(n, 5, 3)
    if with_points:
        for i, (cx, cy, w, h) in enumerate(boxes.tolist()):
            corners = [(cx, cy - h / 2), (cx - w / 2, cy), (cx + w / 2, cy), (cx - w / 4, cy + h / 2), (cx + w / 4, cy + h / 2)]
            keypoints[i, :, :2] = torch.tensor(corners)
            keypoints[i, :, 2] = 2
    return {
        "img": torch.rand(2, 3, 64, 64),
        "cls": torch.tensor(classes, dtype=torch.float32).view(-1, 1),
        "bboxes": boxes,
        "batch_idx": torch.arange(n, dtype=torch.float32),
        "masks": masks[:n],
        "keypoints": keypoints,
    }


def trainable(tiny):
    """A copy of a session model in training mode with default hyperparameters and a fresh criterion."""
    model = copy.deepcopy(tiny)
    model.args = copy.copy(DEFAULT_CFG)
    model.criterion = None
    model.train()
    return model


@pytest.fixture
def model(tiny_model):
    return trainable(tiny_model)


def test_loss_parts_are_named_and_finite(model):
    loss, items = model.loss(make_batch([0, 1]))
    assert tuple(items) == LOSS_NAMES
    assert torch.isfinite(loss).all() and all(torch.isfinite(v) for v in items.values())
    assert items["pose_loss"] > 0 and items["seg_loss"] > 0


def test_loss_falls_on_a_tiny_batch(model):
    torch.manual_seed(0)
    batch = make_batch([0, 1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(25):
        loss, items = model.loss(batch)
        first = first if first is not None else {k: float(v) for k, v in items.items()}
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
    last = {k: float(v) for k, v in items.items()}
    assert sum(last.values()) < 0.7 * sum(first.values())
    assert last["pose_loss"] < first["pose_loss"]
    assert last["seg_loss"] < first["seg_loss"]


def test_objects_without_keypoint_class_teach_keypoints_nothing(model):
    _, items = model.loss(make_batch([1, 1]))  # class 1 (disc) has no keypoints
    assert float(items["pose_loss"]) == 0 and float(items["kobj_loss"]) == 0
    assert float(items["seg_loss"]) > 0


def test_keypoint_class_objects_without_labeled_points_are_left_out(model):
    _, items = model.loss(make_batch([0, 0], with_points=False))
    assert float(items["pose_loss"]) == 0 and float(items["kobj_loss"]) == 0


def test_keypoint_gradient_reaches_only_with_labels(model):
    loss, _ = model.loss(make_batch([1, 1]))
    loss.sum().backward()
    head = model.model[-1]
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in head.cv5.parameters())


def test_a_batch_of_background_images_only_teaches_background(model):
    loss, items = model.loss(background_batch())
    assert torch.isfinite(loss).all()
    for name in ("box_loss", "seg_loss", "dfl_loss", "pose_loss", "kobj_loss"):
        assert float(items[name]) == 0, name
    assert float(items["cls_loss"]) > 0  # every anchor is pushed towards "no object"
    loss.sum().backward()
    head = model.model[-1]
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in head.cv3.parameters())


def test_a_background_image_beside_one_with_objects(model):
    batch = make_batch([0, 1])
    batch["batch_idx"] = torch.zeros(2)  # both objects in image 0; image 1 is background
    batch["masks"] = torch.stack([batch["masks"][0] + 2 * batch["masks"][1], torch.zeros(16, 16)]).clamp(max=2)
    loss, items = model.loss(batch)
    assert torch.isfinite(loss).all()
    assert float(items["pose_loss"]) > 0 and float(items["seg_loss"]) > 0


# --- YOLO26: E2ELoss (one-to-many + one-to-one) around MultiTaskLoss26 ------------------------------------------

def with_semantic(batch: dict) -> dict:
    """The per-pixel class map ultralytics' Format adds beside instance masks (0 where no object)."""
    classes = batch["cls"].view(-1)
    sem = torch.zeros_like(batch["masks"][:2]) if len(batch["masks"]) else torch.zeros(2, 16, 16)
    for i, image in enumerate(batch["batch_idx"].long().tolist()):
        sem[image][batch["masks"][image] == 1] = classes[i]
    return {**batch, "sem_masks": sem}


@pytest.fixture
def model26(tiny_model26):
    return trainable(tiny_model26)


def test_yolo26_loss_is_end_to_end_with_named_finite_parts(model26):
    from ultralytics.utils.loss import E2ELoss

    from mttrain.nn.loss import LOSS_NAMES_26, MultiTaskLoss26

    loss, items = model26.loss(with_semantic(make_batch([0, 1])))
    criterion = model26.criterion
    assert isinstance(criterion, E2ELoss) and isinstance(criterion.one2one, MultiTaskLoss26)
    assert criterion.one2one.assigner.topk2 == 1 and criterion.one2many.assigner.topk == 10
    assert tuple(items) == LOSS_NAMES_26
    assert torch.isfinite(loss).all() and all(torch.isfinite(v) for v in items.values())
    for name in ("box_loss", "seg_loss", "cls_loss", "l1_loss", "pose_loss", "kobj_loss", "rle_loss", "sem_loss"):
        assert items[name] > 0, name


def test_yolo26_one2many_weight_decays_per_epoch(model26):
    model26.args.epochs = 5
    model26.loss(with_semantic(make_batch([0, 1])))
    criterion = model26.criterion
    weights = []
    for _ in range(4):
        weights.append(criterion.o2m)
        criterion.update()  # the trainer calls it after each epoch
    weights.append(criterion.o2m)
    assert weights[0] == pytest.approx(0.8) and weights[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(weights, weights[1:]))


def test_yolo26_loss_falls_on_a_tiny_batch(model26):
    torch.manual_seed(0)
    batch = with_semantic(make_batch([0, 1]))
    optimizer = torch.optim.Adam(model26.parameters(), lr=1e-3)
    first = None
    for _ in range(20):
        loss, items = model26.loss(batch)
        first = first if first is not None else {k: float(v) for k, v in items.items()}
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
    last = {k: float(v) for k, v in items.items()}
    assert sum(last.values()) < 0.7 * sum(first.values())
    for name in ("pose_loss", "seg_loss", "rle_loss", "sem_loss"):
        assert last[name] < first[name], name


def test_yolo26_objects_without_keypoint_class_or_points_teach_keypoints_nothing(model26):
    for batch in (make_batch([1, 1]), make_batch([0, 0], with_points=False)):
        loss, items = model26.loss(with_semantic(batch))
        assert float(items["pose_loss"]) == 0 and float(items["kobj_loss"]) == 0 and float(items["rle_loss"]) == 0
        assert float(items["seg_loss"]) > 0
    loss.sum().backward()
    head = model26.model[-1]
    for branch in (head.cv5, head.cv5_kpts, head.cv5_sigma, head.one2one_cv5, head.flow_model):
        assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in branch.parameters())


def test_yolo26_a_batch_of_background_images_only_teaches_background(model26):
    loss, items = model26.loss(with_semantic(background_batch()))
    assert torch.isfinite(loss).all()
    for name in ("box_loss", "seg_loss", "l1_loss", "pose_loss", "kobj_loss", "rle_loss", "sem_loss"):
        assert float(items[name]) == 0, name
    assert float(items["cls_loss"]) > 0
    loss.sum().backward()
    head = model26.model[-1]
    for branch in (head.cv3, head.one2one_cv3):
        assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in branch.parameters())
