"""mttrain: train, validate, predict and export multitask YOLO models on ultralytics 8.4.

>>> from mttrain import MultiTaskYOLO  # doctest: +SKIP
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: importing mttrain must not import torch and ultralytics until a model is used.
    if name == "MultiTaskYOLO":
        from mttrain.model import MultiTaskYOLO

        return MultiTaskYOLO
    raise AttributeError(name)


__all__ = ["MultiTaskYOLO"]
