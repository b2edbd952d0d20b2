"""The one module that touches ultralytics internals fails loudly when they move."""

import pytest

from mttrain import _ultralytics


def test_internals_are_where_mttrain_expects_them():
    assert _ultralytics.check_internals() == []


@pytest.mark.parametrize("version", ["8.3.200", "8.5.0", "9.0.1"])
def test_unsupported_ultralytics_is_refused_with_the_range(version):
    with pytest.raises(ImportError, match=r">=8\.4,<8\.5"):
        _ultralytics.check_version(version)


def test_supported_version_passes():
    _ultralytics.check_version("8.4.190")


def test_build_hook_is_scoped():
    from ultralytics.nn import tasks

    original = tasks.parse_model
    with _ultralytics.build_with_head("MultiTask", lambda seg: seg):
        assert tasks.parse_model is not original
    assert tasks.parse_model is original


def test_multitask_task_is_registered():
    from ultralytics import cfg

    assert "multitask" in cfg.TASK2DATA and "multitask" in cfg.TASK2METRIC


@pytest.mark.parametrize("module, name, value, message", [
    ("ultralytics.engine.model", "PREDICTOR_SETUP_KEYS", ("device",), "PREDICTOR_SETUP_KEYS lacks nms"),
    ("ultralytics.utils.loss", "PoseLoss26.calculate_rle_loss", None, "PoseLoss26.calculate_rle_loss is gone"),
    ("ultralytics.nn.modules.head", "Detect.fuse", lambda self: None, "Detect.fuse no longer drops branches"),
], ids=["predictor-reset-keys", "rle-loss", "fuse-by-prefix"])
def test_end2end_internals_that_move_are_named(module, name, value, message, monkeypatch):
    import importlib

    target = importlib.import_module(module)
    *owner, attr = name.split(".")
    for part in owner:
        target = getattr(target, part)
    if value is None:
        monkeypatch.delattr(target, attr)
    else:
        monkeypatch.setattr(target, attr, value)
    assert any(message in problem for problem in _ultralytics.check_internals())
