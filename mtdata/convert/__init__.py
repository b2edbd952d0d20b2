"""COCO, Labelme or Label Studio -> YOLO dataset: ``dataset`` (:func:`convert_coco`), ``labels`` (a split's
label files), ``files``, ``tools`` (the annotation tools' JSON through the COCO path).
"""
