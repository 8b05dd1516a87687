"""A constant-velocity Kalman filter on boxes, as SORT and DeepSORT track them.

The state is (cx, cy, a, h, vcx, vcy, va, vh): box centre and height in px, aspect ratio a = w / h,
and their velocities per frame. Measurements are boxes (cx, cy, a, h). Process and measurement
noise scale with the box height (DeepSORT's choice), so that the filter behaves the same for small
and large objects; position and velocity noise default to DeepSORT's 1/20 and 1/160 of the height.
"""
from __future__ import annotations

import numpy as np

from pixelwise.errors import PixelwiseError


def xyxy_to_cxcyah(boxes: np.ndarray) -> np.ndarray:
    """(..., 4) xyxy px -> (..., 4) centre x, centre y, aspect w / h, height h."""
    b = np.asarray(boxes, np.float64)
    w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    if (h <= 0).any() or (w < 0).any():
        raise PixelwiseError(f"boxes must be xyxy with x2 >= x1 and y2 > y1, got {b.reshape(-1, 4)[0].tolist()} ...")
    return np.stack([(b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2, w / h, h], axis=-1)


def cxcyah_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(..., 4) centre x, centre y, aspect, height -> (..., 4) xyxy px."""
    b = np.asarray(boxes, np.float64)
    w = b[..., 2] * b[..., 3]
    return np.stack([b[..., 0] - w / 2, b[..., 1] - b[..., 3] / 2, b[..., 0] + w / 2, b[..., 1] + b[..., 3] / 2],
                    axis=-1)


class KalmanBoxFilter:
    """One track's box under a constant-velocity model.

    box: (4,) xyxy px of the first detection; velocities start at 0 with a large uncertainty.
    `predict()` advances one frame and returns the predicted box (4,) xyxy; `update(box)` folds in a
    measured box; `box`, `velocity` (4,) (px/frame for cx, cy, h; per frame for a) read the state.
    """

    def __init__(self, box: np.ndarray, std_position: float = 1 / 20, std_velocity: float = 1 / 160):
        if std_position <= 0 or std_velocity <= 0:
            raise PixelwiseError(f"Kalman noise levels must be positive, got std_position={std_position}, "
                                 f"std_velocity={std_velocity}")
        self.std_position, self.std_velocity = std_position, std_velocity
        z = xyxy_to_cxcyah(box).reshape(4)
        self.mean = np.concatenate([z, np.zeros(4)])
        h = z[3]
        std = [2 * std_position * h, 2 * std_position * h, 1e-2, 2 * std_position * h,
               10 * std_velocity * h, 10 * std_velocity * h, 1e-5, 10 * std_velocity * h]
        self.covariance = np.diag(np.square(std))
        self.motion = np.eye(8)
        self.motion[:4, 4:] = np.eye(4)         # x_{t+1} = x_t + v_t
        self.observation = np.eye(4, 8)

    @property
    def box(self) -> np.ndarray:
        """(4,) xyxy px of the current state estimate."""
        return cxcyah_to_xyxy(self.mean[:4])

    @property
    def velocity(self) -> np.ndarray:
        """(4,) per-frame change of (cx, cy, a, h)."""
        return self.mean[4:].copy()

    def predict(self) -> np.ndarray:
        """Advance the state one frame; returns the predicted box (4,) xyxy px."""
        h = self.mean[3]
        std = [self.std_position * h, self.std_position * h, 1e-2, self.std_position * h,
               self.std_velocity * h, self.std_velocity * h, 1e-5, self.std_velocity * h]
        self.mean = self.motion @ self.mean
        self.covariance = self.motion @ self.covariance @ self.motion.T + np.diag(np.square(std))
        return self.box

    def _innovation_covariance(self) -> np.ndarray:
        h = self.mean[3]
        noise = np.diag(np.square([self.std_position * h, self.std_position * h, 1e-1, self.std_position * h]))
        return self.observation @ self.covariance @ self.observation.T + noise

    def update(self, box: np.ndarray) -> np.ndarray:
        """Correct the state with a measured box (4,) xyxy px; returns the corrected box (4,) xyxy px."""
        z = xyxy_to_cxcyah(box).reshape(4)
        s = self._innovation_covariance()
        gain = np.linalg.solve(s, self.observation @ self.covariance).T   # P H^T S^-1, S symmetric
        self.mean = self.mean + gain @ (z - self.observation @ self.mean)
        self.covariance = (np.eye(8) - gain @ self.observation) @ self.covariance
        return self.box

    def mahalanobis(self, boxes: np.ndarray, only_position: bool = False) -> np.ndarray:
        """(M,) squared Mahalanobis distances of boxes (M, 4) xyxy to the predicted measurement, for gating
        (chi-square with 4 degrees of freedom: 9.49 at 95%). only_position: of the box centres alone
        (2 degrees of freedom: 5.99 at 95%), for boxes whose shape cannot be trusted (occluded views)."""
        d = xyxy_to_cxcyah(np.asarray(boxes, np.float64).reshape(-1, 4)) - self.observation @ self.mean
        s = self._innovation_covariance()
        if only_position:
            d, s = d[:, :2], s[:2, :2]
        return np.einsum("mi,mi->m", d, np.linalg.solve(s, d.T).T)
