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


_KM_PER_CHORD = 2.0 * EARTH_RADIUS_KM


def _xyz(latitude: float, longitude: float) -> tuple[float, float, float]:
    """One point on the unit sphere (plain floats; the same maths for single and batch queries)."""
    lat, lon = math.radians(latitude), math.radians(longitude)
    cos_lat = math.cos(lat)
    return (cos_lat * math.cos(lon), cos_lat * math.sin(lon), math.sin(lat))


class SphereIndex:
    """Nearest-neighbour queries over fixed points, answered in great-circle km."""

    def __init__(self, latitudes: Sequence[float], longitudes: Sequence[float]) -> None:
        """Index the points (degrees); an empty index answers every query with nothing."""
        self.size = len(latitudes)
        self._primed: dict[tuple[float, float, int, float], tuple[list[float], list[int]]] = {}
        self._tree = cKDTree(unit_xyz(latitudes, longitudes)) if self.size else None

    def nearest(
        self, latitude: float, longitude: float, k: int, max_km: float
    ) -> tuple[list[float], list[int]]:
        """Up to ``k`` nearest points within ``max_km``: (km, indices), nearest first.

        One point at a time in plain floats (NumPy's per-call overhead on a 3-vector cost
        more than the tree search); an answer ``prime`` worked out beforehand is reused.
        """
        if self._tree is None or k <= 0:
            return [], []
        k = min(k, self.size)
        primed = self._primed.pop((latitude, longitude, k, max_km), None)
        if primed is not None:
            return primed
        point = _xyz(latitude, longitude)
        chord, idx = self._tree.query(point, k=k, distance_upper_bound=km_to_chord(max_km))
        if k == 1:
            return self._answer([float(chord)], [int(idx)])
        return self._answer(chord.tolist(), idx.tolist())

    def prime(
        self, latitudes: Sequence[float], longitudes: Sequence[float], k: int, max_km: float
    ) -> None:
        """Answer ``nearest`` for many points in one vectorised tree query, kept for reuse.

        The same answers ``nearest`` would compute one by one (the tree does not change);
        a burst of orders then pays the query's overhead once.
        """
        if self._tree is None or k <= 0 or not latitudes:
            return
        k = min(k, self.size)
        points = [_xyz(lat, lon) for lat, lon in zip(latitudes, longitudes, strict=True)]
        chords, idxs = self._tree.query(points, k=k, distance_upper_bound=km_to_chord(max_km))
        chords = np.asarray(chords).reshape(len(points), k)
        idxs = np.asarray(idxs).reshape(len(points), k)
        for lat, lon, chord, idx in zip(
            latitudes, longitudes, chords.tolist(), idxs.tolist(), strict=True
        ):
            self._primed[(lat, lon, k, max_km)] = self._answer(chord, idx)

    @staticmethod
    def _answer(chords: list[float], idxs: list[int]) -> tuple[list[float], list[int]]:
        """Chords to km, dropping the misses (cKDTree pads them with inf)."""
        n = len(chords)
        if chords[-1] == math.inf:
            n = chords.index(math.inf)
        # math.asin, not NumPy's: single and primed answers must agree to the last bit.
        return [_KM_PER_CHORD * math.asin(min(c / 2.0, 1.0)) for c in chords[:n]], idxs[:n]
