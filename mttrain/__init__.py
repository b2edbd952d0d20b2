"""mttrain: train, validate, predict and export multitask YOLO models on ultralytics."""
