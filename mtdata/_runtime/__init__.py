"""Plumbing beside the domain: forking, one parallel runner, fast number parsing, scipy's solver loaded
alone, atomic output, stale runs, signals. Private: imports nothing of mtdata but ``errors`` and
itself, and only mtdata imports it.
"""
