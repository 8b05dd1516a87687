"""A rectified stereo pair from fronto-parallel or slanted layers, with exact ground truth for both views.

A layer is an image, an alpha map and an affine disparity d(x, y) = a + b * x + c * y (pixels, in
left-view coordinates; a plane in 3-D has exactly such a disparity). Layers are listed far to near.
The left view composites the layers as given; the right view shows the point of a layer at left
column x at x_right = x - d(x, y), so the right view samples each layer at
x_left = (x_right + a + c * y) / (1 - b), linearly interpolating its premultiplied image and its
alpha (outside the layer: transparent), and composites them far to near over black.

Ground truth, per view: the layer each pixel shows (the nearest with alpha >= 0.5), its disparity,
`valid` (at least PURE of the pixel's colour comes from that layer, so mixed edge pixels carry no
disparity) and `occluded` (its point is not seen in the other view: a nearer layer covers it there,
alpha >= 0.5 at the matching position, or it falls outside the other view's frame: x - d < 0 for the
left view, x + d > W - 1 for the right view). The right view's ground truth makes the
flip-and-swap augmentation exact (pixelwise.data.stereo_transforms).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from pixelwise.errors import PixelwiseError

PURE = 0.9   # minimum share of a pixel's colour from one layer for the pixel to carry a disparity
SHOWN = 0.5  # alpha from which a layer hides what lies behind it


class Layer(NamedTuple):
    """One scene layer: image and alpha (H, Wl) float in [0, 1], Wl >= the output width, and the
    disparity plane (a, b, c) in px: d(x, y) = a + b * x + c * y at left-view pixel (x, y), b < 1."""

    image: np.ndarray
    alpha: np.ndarray
    disparity: tuple[float, float, float]


class StereoRender(NamedTuple):
    """Both views and their ground truth, every array (H, W).

    left, right: float64 in [0, 1]. front, front_right: int64 index into the layers of the layer
    each pixel shows (-1 where none has alpha >= 0.5). disparity, disparity_right: float64 px, >= 0
    for non-negative layer disparities. valid, occluded (and their right-view twins): bool, occluded
    only where valid.
    """

    left: np.ndarray
    right: np.ndarray
    front: np.ndarray
    disparity: np.ndarray
    valid: np.ndarray
    occluded: np.ndarray
    front_right: np.ndarray
    disparity_right: np.ndarray
    valid_right: np.ndarray
    occluded_right: np.ndarray


def sample_rows(values: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """values (H, Wl) sampled at fractional columns xs (H, W), row by row, by linear interpolation.

    Neighbours outside [0, Wl - 1] count as 0, so a layer fades out over its last pixel.
    """
    x0 = np.floor(xs)
    frac = xs - x0
    x0 = x0.astype(np.int64)
    width = values.shape[1]

    def take(cols: np.ndarray) -> np.ndarray:
        got = np.take_along_axis(values, np.clip(cols, 0, width - 1), axis=1)
        return np.where((cols >= 0) & (cols < width), got, 0.0)

    return (1 - frac) * take(x0) + frac * take(x0 + 1)


def _composite(premult: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Far-to-near 'over' of (L, H, W) premultiplied images and alphas: the image, the front layer
    (nearest with alpha >= SHOWN, -1 if none) and the share of the front layer in each pixel."""
    image = np.zeros(alpha.shape[1:])
    front = np.full(alpha.shape[1:], -1, np.int64)
    for k in range(len(alpha)):
        image = premult[k] + (1 - alpha[k]) * image
        front = np.where(alpha[k] >= SHOWN, k, front)
    share = np.zeros(alpha.shape[1:])
    for k in range(len(alpha)):   # share of layer k: alpha_k times the transmittance of nearer layers
        transmit = np.prod(1 - alpha[k + 1:], axis=0) if k + 1 < len(alpha) else 1.0
        share = np.where(front == k, alpha[k] * transmit, share)
    return image, front, share


def _check_layers(layers: Sequence[Layer], width: int) -> int:
    if not layers:
        raise PixelwiseError("render_stereo_pair: got no layers; pass at least a background layer")
    height = layers[0].image.shape[0]
    for i, layer in enumerate(layers):
        if layer.image.ndim != 2 or layer.image.shape != layer.alpha.shape:
            raise PixelwiseError(f"layer {i}: image {layer.image.shape} and alpha {layer.alpha.shape} "
                                 "must be equal (H, Wl) arrays")
        if layer.image.shape[0] != height or layer.image.shape[1] < width:
            raise PixelwiseError(f"layer {i}: shape {layer.image.shape} must be ({height}, >= {width}); "
                                 "make every layer as tall as the first and at least the output width")
        if not layer.disparity[1] < 1:
            raise PixelwiseError(f"layer {i}: disparity slope b = {layer.disparity[1]} along x must be < 1")
    return height


def render_stereo_pair(layers: Sequence[Layer], width: int) -> StereoRender:
    """Render the left and right views (H, width) of `layers` (far to near) and their ground truth."""
    height = _check_layers(layers, width)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    coef = np.array([layer.disparity for layer in layers], np.float64)   # (L, 3)
    alpha_l = np.stack([layer.alpha[:, :width] for layer in layers]).astype(np.float64)
    premult_l = np.stack([(layer.alpha * layer.image)[:, :width] for layer in layers]).astype(np.float64)
    left, front, share = _composite(premult_l, alpha_l)

    # Right view: layer k at right column xr comes from its left column (xr + a + c y) / (1 - b).
    src = (xs[None] + coef[:, 0, None, None] + coef[:, 2, None, None] * ys[None]) / (1 - coef[:, 1, None, None])
    alpha_r = np.stack([sample_rows(layer.alpha.astype(np.float64), s) for layer, s in zip(layers, src)])
    premult_r = np.stack([sample_rows((layer.alpha * layer.image).astype(np.float64), s)
                          for layer, s in zip(layers, src)])
    right, front_r, share_r = _composite(premult_r, alpha_r)

    pick = np.clip(front, 0, None)
    disparity = coef[pick, 0] + coef[pick, 1] * xs + coef[pick, 2] * ys
    disparity_r = np.take_along_axis(src, np.clip(front_r, 0, None)[None], 0)[0] - xs

    # Left pixel -> right column xs - d: covered there by a nearer layer, or outside the right frame.
    match_r = xs - disparity
    covered = np.zeros((height, width), bool)
    for k, layer in enumerate(layers):
        at = (match_r + coef[k, 0] + coef[k, 2] * ys) / (1 - coef[k, 1])
        covered |= (k > front) & (sample_rows(layer.alpha.astype(np.float64), at) >= SHOWN)
    occluded = covered | (match_r < 0)
    match_l = xs + disparity_r
    covered_r = np.zeros((height, width), bool)
    for k, layer in enumerate(layers):
        covered_r |= (k > front_r) & (sample_rows(layer.alpha.astype(np.float64), match_l) >= SHOWN)
    occluded_r = covered_r | (match_l > width - 1)

    valid, valid_r = (front >= 0) & (share >= PURE), (front_r >= 0) & (share_r >= PURE)
    return StereoRender(left.clip(0, 1), right.clip(0, 1), front, np.where(front >= 0, disparity, 0.0),
                        valid, occluded & valid, front_r, np.where(front_r >= 0, disparity_r, 0.0),
                        valid_r, occluded_r & valid_r)


def layer_disparity(coef: np.ndarray, front: np.ndarray, right: bool = False) -> np.ndarray:
    """The disparity map (H, W) float64 px of a view from its front-layer map and the layers' planes.

    coef: (L, 3) rows (a, b, c); front: (H, W) int indices into coef (-1 gives 0). Equals the
    `disparity` (right=False) or `disparity_right` (right=True) of `render_stereo_pair`.
    """
    ys, xs = np.mgrid[0:front.shape[0], 0:front.shape[1]].astype(np.float64)
    a, b, c = (coef[np.clip(front, 0, None), i] for i in range(3))
    d = (xs + a + c * ys) / (1 - b) - xs if right else a + b * xs + c * ys
    return np.where(front >= 0, d, 0.0)
