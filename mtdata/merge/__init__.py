"""A pose dataset + a segment dataset -> multitask: ``dataset`` (:func:`merge_datasets`), ``config``,
``classes``, ``plan``, ``write``, ``chunk``, ``match``, ``report``.
"""
