"""Format modules: pure functions between files and :class:`mtdata.records.ImageLabels`."""
