"""A dataset in FiftyOne: ``dataset`` (:func:`build_dataset`) from ``entries`` (images and label rows read),
``labels`` (their FiftyOne values, public API) and ``docs`` (the one seam into FiftyOne's internals, a faster
write), ``fields`` (names, colours, the lazy import), ``predictions``, ``app`` (serving the App). The only room
that imports fiftyone.
"""


def __getattr__(name: str):
    """``from mtdata.view import build_dataset`` (the notebook entry point) without importing fiftyone with the package."""
    if name == "build_dataset":
        from mtdata.view.dataset import build_dataset

        return build_dataset
    raise AttributeError(f"module 'mtdata.view' has no attribute {name!r}")
