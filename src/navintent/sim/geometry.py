"""Static 2-D geometry of a room: signed distances and outward normals (metres, world frame).

The room is the square ``[0, L] x [0, L]`` bounded by walls; obstacles are axis-aligned boxes
``(cx, cy, hx, hy)`` (centre, half extents) and vertical cylinders ``(cx, cy, r)``. Everything the
planner, the pedestrians and the collision checks know about static geometry comes from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StaticMap:
    """``boxes [Nb, 4]`` (cx, cy, hx, hy) and ``cylinders [Nc, 3]`` (cx, cy, r) inside a room of side ``room_size``."""

    room_size: float
    boxes: np.ndarray
    cylinders: np.ndarray

    @property
    def num_shapes(self) -> int:
        """Walls (4) + boxes + cylinders."""
        return 4 + len(self.boxes) + len(self.cylinders)

    def distances_and_normals(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``points [P, 2]`` -> signed distance to each shape ``[P, S]`` and unit normals ``[P, S, 2]``.

        The normal points from the shape towards the point (the direction that increases the distance).
        Shapes are ordered: walls (x=0, x=L, y=0, y=L), boxes, cylinders. Negative distance = inside.
        """
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        size = self.room_size
        wall_d = np.stack([p[:, 0], size - p[:, 0], p[:, 1], size - p[:, 1]], axis=1)
        wall_n = np.broadcast_to(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]), (len(p), 4, 2))
        dists, normals = [wall_d], [wall_n]
        if len(self.boxes):
            c, h = self.boxes[None, :, :2], self.boxes[None, :, 2:]
            rel = p[:, None, :] - c
            q = np.abs(rel) - h  # [P, Nb, 2]
            outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
            inside = np.minimum(q.max(axis=-1), 0.0)
            dists.append(outside + inside)
            sign = np.where(rel >= 0, 1.0, -1.0)
            out_n = np.maximum(q, 0.0) * sign
            out_norm = np.linalg.norm(out_n, axis=-1, keepdims=True)
            axis = np.argmax(q, axis=-1)  # inside: leave through the nearest face
            in_n = np.zeros_like(q)
            np.put_along_axis(in_n, axis[..., None], 1.0, axis=-1)
            in_n *= sign
            normals.append(np.where(out_norm > 1e-12, out_n / np.maximum(out_norm, 1e-12), in_n))
        if len(self.cylinders):
            rel = p[:, None, :] - self.cylinders[None, :, :2]
            norm = np.linalg.norm(rel, axis=-1)
            dists.append(norm - self.cylinders[None, :, 2])
            safe = np.maximum(norm, 1e-12)[..., None]
            normals.append(np.where(norm[..., None] > 1e-12, rel / safe, np.array([1.0, 0.0])))
        return np.concatenate(dists, axis=1), np.concatenate(normals, axis=1)

    def clearance(self, points: np.ndarray) -> np.ndarray:
        """``points [..., 2]`` -> signed distance to the nearest static surface ``[...]`` (m)."""
        points = np.asarray(points, dtype=np.float64)
        d, _ = self.distances_and_normals(points.reshape(-1, 2))
        return d.min(axis=1).reshape(points.shape[:-1])

    def segment_clearance(self, a: np.ndarray, b: np.ndarray, step: float = 0.05) -> float:
        """Smallest clearance along the segment ``a -> b`` sampled every ``step`` metres."""
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        n = max(2, int(np.ceil(np.linalg.norm(b - a) / step)) + 1)
        t = np.linspace(0.0, 1.0, n)[:, None]
        return float(self.clearance(a + t * (b - a)).min())
