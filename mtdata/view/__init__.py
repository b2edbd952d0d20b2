"""A dataset in FiftyOne: ``dataset`` (:func:`build_dataset`) from ``entries`` (images and label rows read),
``labels`` (their FiftyOne values, public API) and ``docs`` (the one seam into FiftyOne's internals, a faster
write), ``fields`` (names, colours, the lazy import), ``predictions``, ``app`` (serving the App). The only room
that imports fiftyone.
"""
