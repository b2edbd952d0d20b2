"""mtdata: datasets for multitask (instance segmentation + keypoints) YOLO models."""

__version__ = "0.1.0"
