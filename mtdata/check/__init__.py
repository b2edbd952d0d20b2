"""``mtdata check`` and ``--fix``: ``rules`` (ids), ``data_yaml`` (findings at lines, from the one reader),
``verify`` (one image and one label file, as export and the trainer decide), ``polygons``,
``objects`` (geometry and keypoint rules), ``dataset`` (:func:`check_dataset`), ``fix``.
"""
