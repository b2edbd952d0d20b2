"""COCO JSON: ``checks`` (bounds, words), ``read`` (per annotation), ``columns`` (the bulk reader),
``objects`` (annotations in bulk -> objects), ``write``.
"""
