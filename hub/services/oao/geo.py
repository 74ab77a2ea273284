"""Great-circle geometry and a k-d tree over stores on the unit sphere (nearest-store queries).

Why scipy's ``cKDTree`` on unit-sphere xyz: it is a well-kept, compiled index that answers
"the k nearest points" in O(log n); on the sphere the straight-line (chord) distance
grows monotonically with the great-circle distance, so the chord order *is* the
great-circle order and the tree needs no custom metric. A haversine ``BallTree`` would
need scikit-learn, a heavier dependency for the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

# Mean Earth radius (IUGG), the usual sphere for great-circle distances.
EARTH_RADIUS_KM = 6371.0088


def unit_xyz(
    latitudes: Sequence[float] | NDArray[np.float64],
    longitudes: Sequence[float] | NDArray[np.float64],
) -> NDArray[np.float64]:
    """Points on the unit sphere, shape (n, 3), for latitudes/longitudes in degrees."""
    lat = np.radians(np.asarray(latitudes, dtype=np.float64))
    lon = np.radians(np.asarray(longitudes, dtype=np.float64))
    cos_lat = np.cos(lat)
    return np.column_stack((cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)))


def chord_to_km(chord: NDArray[np.float64] | float) -> NDArray[np.float64] | float:
    """Great-circle distance in km of a unit-sphere chord length."""
    half = np.clip(np.asarray(chord, dtype=np.float64) / 2.0, 0.0, 1.0)
    km = 2.0 * EARTH_RADIUS_KM * np.arcsin(half)
    return float(km) if np.ndim(km) == 0 else km


def km_to_chord(km: float) -> float:
    """The unit-sphere chord length of a great-circle distance in km."""
    angle = min(km / EARTH_RADIUS_KM, math.pi)
    return 2.0 * math.sin(angle / 2.0)


def haversine_km(
    lat1: float, lon1: float, lats: NDArray[np.float64], lons: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Great-circle distances (km) from one point to many (vectorised haversine)."""
    p1 = math.radians(lat1)
    p2 = np.radians(lats)
    dp = p2 - p1
    dl = np.radians(lons) - math.radians(lon1)
    a = np.sin(dp / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


class SphereIndex:
    """Nearest-neighbour queries over fixed points, answered in great-circle km."""

    def __init__(self, latitudes: Sequence[float], longitudes: Sequence[float]) -> None:
        """Index the points (degrees); an empty index answers every query with nothing."""
        self.size = len(latitudes)
        self._tree = cKDTree(unit_xyz(latitudes, longitudes)) if self.size else None

    def nearest(
        self, latitude: float, longitude: float, k: int, max_km: float
    ) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
        """Up to ``k`` nearest points within ``max_km``: (km, indices), nearest first."""
        if self._tree is None or k <= 0:
            return np.empty(0), np.empty(0, dtype=np.intp)
        k = min(k, self.size)
        chord, idx = self._tree.query(
            unit_xyz([latitude], [longitude])[0], k=k, distance_upper_bound=km_to_chord(max_km)
        )
        chord, idx = np.atleast_1d(chord), np.atleast_1d(idx)
        found = np.isfinite(chord)  # cKDTree pads misses beyond the bound with inf
        return np.asarray(chord_to_km(chord[found])), idx[found]
