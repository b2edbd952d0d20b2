"""Is a row's polygon usable: the one geometry validator of check, check --fix, export and the trainer.

Polygons from ``mtdata convert`` may join several parts with zero-width bridges
(:func:`mtdata.geometry.join_polygons`): such a ring touches itself, so shapely calls it
invalid, yet nothing crosses. A polygon is reported as self-intersecting only when two of its
edges cross properly *and* the crossing changes its filled area (shapely ``make_valid``) by
more than 1% of its outline's (shoelace) area; it has zero area when its outline encloses
none. Both verdicts are taken in normalized coordinates: a scaling of the axes (to pixels)
changes neither area ratio nor which edges cross, so every command reaches the same verdict
whatever image size it knows.
"""

from __future__ import annotations

import numpy as np
import shapely

from mtdata.limits import ZERO_AREA

SELF_INTERSECTION_AREA = 0.01  # relative area change that counts as a real crossing
# has_crossing compares every pair of edges: (P, P) arrays. Above this many points the area
# test alone decides (make_valid is O(P log P)); a bridge or a touching vertex adds no area either way.
MAX_PAIRWISE_POINTS = 512


def has_crossing(polygon: np.ndarray) -> bool:
    """Do two edges of a (P, 2) ring cross properly (each through the other's interior)?

    Shared vertices, touching points and collinear overlaps (the zero-width bridges of
    :func:`mtdata.geometry.join_polygons`) are not crossings: their orientation tests are 0.
    Rings over MAX_PAIRWISE_POINTS points are assumed to cross (the area test then decides).
    """
    if len(polygon) > MAX_PAIRWISE_POINTS:
        return True
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    d = b - a

    def side(seg_a, seg_d, pts):  # (P, P): orientation of pts[j] to segment i
        rel = pts[None, :, :] - seg_a[:, None, :]
        return seg_d[:, None, 0] * rel[..., 1] - seg_d[:, None, 1] * rel[..., 0]

    o1, o2 = side(a, d, a), side(a, d, b)  # ends of segment j against segment i
    return bool((((o1 * o2) < 0) & ((o1 * o2).T < 0)).any())


def polygon_defects(polygons_xyn: list[np.ndarray]) -> tuple[list[tuple[str, str] | None], list]:
    """The geometry verdict on many (P_i >= 3, 2) normalized polygons at once (one shapely call each step).

    Returns:
        (defects, shapes): per polygon, None when it is usable, else (rule id, message) with
        rule ``zero_area`` or ``polygon_self_intersecting``; and per polygon its shapely
        geometry (what it fills: ``make_valid``'s for rings that touch or cross themselves),
        None for zero-area ones.
    """
    n = len(polygons_xyn)
    defects: list[tuple[str, str] | None] = [None] * n
    if not n:
        return defects, []
    ring_ids = np.repeat(np.arange(n), [len(p) for p in polygons_xyn])
    polys = shapely.polygons(shapely.linearrings(np.concatenate(polygons_xyn), indices=ring_ids))
    areas = shapely.area(polys)  # GEOS: the absolute shoelace area, also for invalid rings
    shapes: list = list(polys)
    suspect = ~shapely.is_valid(polys)
    # GEOS (>= 3.10) reports any interior intersection of edges as "Self-intersection" before it
    # looks for a ring touching itself at a vertex ("Ring Self-intersection"): the latter, most
    # bridged multi-part polygons, cannot hide a crossing and skip the slower tests below.
    if suspect.any():
        reasons = shapely.is_valid_reason(polys[suspect])
        suspect[np.flatnonzero(suspect)] = [not r.startswith("Ring Self-intersection") for r in reasons]
    zero = areas <= ZERO_AREA
    for j in np.flatnonzero(zero).tolist():
        defects[j] = ("zero_area", "the polygon encloses no area (its points are collinear or repeated)")
        shapes[j] = None
    for j in np.flatnonzero(suspect & ~zero).tolist():
        if not has_crossing(polygons_xyn[j]):
            continue  # bridges and touching vertices make shapely say invalid, but nothing crosses
        filled = shapely.make_valid(polys[j])
        shapes[j] = filled
        if abs(filled.area - areas[j]) > SELF_INTERSECTION_AREA * max(filled.area, areas[j]):
            defects[j] = ("polygon_self_intersecting",
                          f"the polygon crosses itself: its outline encloses {areas[j]:.4g} but fills "
                          f"{filled.area:.4g} (normalized area)")
    return defects, shapes
