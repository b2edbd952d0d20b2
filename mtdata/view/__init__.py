"""A dataset in FiftyOne: ``dataset`` (:func:`build_dataset`), ``docs`` (bulk documents), ``predictions``,
``app`` (serving the App). The only room that imports fiftyone.
"""
