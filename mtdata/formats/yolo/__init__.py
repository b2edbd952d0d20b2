"""YOLO: ``rows`` (label rows and files), ``bulk`` (label text for many objects), ``blocks`` (many
label files parsed at once), ``data_yaml`` (the dataset description), ``data_yaml_rules`` (the one
reader: every problem of one), ``data_yaml_types``, ``splits`` (the one lister of a split's images
and label files).
"""
