"""A pose dataset + a segment dataset -> multitask: ``dataset`` (:func:`merge_datasets`), ``plan``,
``chunk``, ``match``.
"""
