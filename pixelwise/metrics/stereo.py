"""Stereo metrics (FS-Stereo protocol), accumulated as sums over the whole dataset.

Over the valid pixels, and over the valid non-occluded ones ('noc'): EPE, the mean |pred - true|
in px; bad-t, the fraction with |pred - true| > t px (t = 1, 2, 3); D1, the fraction with
|err| > 3 px and |err| > 5% of |true| (the KITTI 2015 devkit's outlier rule); and, given focal
length f (px) and baseline B, depth abs-rel, mean |Z_pred - Z_true| / Z_true with Z = f * B / d,
over those pixels whose true disparity is > 0, the predicted disparity clamped to >= `eps` px first
(default 0.01 px); with `max_depth`, only pixels whose true depth is at most max_depth count and the
predicted depth is clipped to it (KITTI's depth protocol caps at 80 m), which keeps a few near-zero
predicted disparities from dominating the mean. Fractions are in [0, 1], not percent. Every pixel counts once: a dataset's figure
is its pixel-weighted mean, never a mean of per-image figures.
"""
from __future__ import annotations

import torch

from pixelwise.errors import PixelwiseError

THRESHOLDS = (1, 2, 3)
MIN_DISPARITY = 0.01   # px: predicted disparities are clamped to at least this for depth


def _as_maps(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
             occluded: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    maps = {"target": target, "valid": valid} | ({} if occluded is None else {"occluded": occluded})
    for name, t in maps.items():
        if t.shape != pred.shape:
            raise PixelwiseError(f"stereo metrics: {name} has shape {tuple(t.shape)} but pred {tuple(pred.shape)}; "
                                 "pass maps of one shape, e.g. (N, 1, H, W)")
    for name in ("valid", "occluded"):
        if name in maps and maps[name].dtype != torch.bool:
            raise PixelwiseError(f"stereo metrics: {name} must be a bool tensor, got {maps[name].dtype}")
    pred, target = pred.detach().cpu().double(), target.detach().cpu().double()
    valid = valid.detach().cpu()
    bad = valid & ~torch.isfinite(pred)
    if bad.any():
        raise PixelwiseError(f"stereo metrics: {int(bad.sum())} valid pixels have a NaN or infinite predicted "
                             "disparity; fill them first (e.g. StereoSGBM's forward interpolates its holes)")
    return pred, target, valid, None if occluded is None else occluded.detach().cpu()


class StereoMeter:
    """Accumulates disparity (and depth) error sums over batches; `summary()` gives the dataset figures.

    update(pred, target, valid, occluded=None): pred and target disparities in px, valid and
    occluded bool, all of one shape (e.g. (N, 1, H, W)); without `occluded`, no 'noc' figures.
    focal (px) and baseline (any length unit) enable depth abs-rel; max_depth (that unit) caps it.
    """

    def __init__(self, focal: float | None = None, baseline: float | None = None, eps: float = MIN_DISPARITY,
                 max_depth: float | None = None):
        if (focal is None) != (baseline is None):
            raise PixelwiseError(f"StereoMeter: give both focal and baseline for depth, or neither "
                                 f"(got focal={focal}, baseline={baseline})")
        if eps <= 0:
            raise PixelwiseError(f"StereoMeter: eps must be > 0 px, got {eps}")
        if max_depth is not None and max_depth <= 0:
            raise PixelwiseError(f"StereoMeter: max_depth must be > 0, got {max_depth}")
        self.focal, self.baseline, self.eps, self.max_depth = focal, baseline, eps, max_depth
        self.sums: dict[str, dict[str, float]] = {}
        self.images = 0

    def _add(self, region: str, err: torch.Tensor, true: torch.Tensor, rel: torch.Tensor | None) -> None:
        s = self.sums.setdefault(region, {"pixels": 0, "abs": 0.0, "d1": 0, "depth_pixels": 0, "abs_rel": 0.0,
                                          **{f"bad{t}": 0 for t in THRESHOLDS}})
        s["pixels"] += err.numel()
        s["abs"] += float(err.sum())
        for t in THRESHOLDS:
            s[f"bad{t}"] += int((err > t).sum())
        s["d1"] += int(((err > 3) & (err > 0.05 * true.abs())).sum())
        if rel is not None:
            s["depth_pixels"] += rel.numel()
            s["abs_rel"] += float(rel.sum())

    def update(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
               occluded: torch.Tensor | None = None) -> None:
        pred, target, valid, occluded = _as_maps(pred, target, valid, occluded)
        regions = {"all": valid} | ({} if occluded is None else {"noc": valid & ~occluded})
        for region, m in regions.items():
            p, t = pred[m], target[m]
            rel = None
            if self.focal is not None:
                fb = self.focal * self.baseline
                has_depth = t > 0
                if self.max_depth is not None:
                    has_depth &= fb / t.clamp(min=1e-12) <= self.max_depth
                z_true, z_pred = fb / t[has_depth], fb / p[has_depth].clamp(min=self.eps)
                if self.max_depth is not None:
                    z_pred = z_pred.clamp(max=self.max_depth)
                rel = (z_pred - z_true).abs() / z_true
            self._add(region, (p - t).abs(), t, rel)
        self.images += int(pred.shape[0]) if pred.ndim == 4 else 1

    def merge(self, other: "StereoMeter") -> None:
        for region, s in other.sums.items():
            mine = self.sums.setdefault(region, dict.fromkeys(s, 0))
            for k, v in s.items():
                mine[k] += v
        self.images += other.images

    def summary(self) -> dict[str, float]:
        """epe, bad1, bad2, bad3, d1, abs_rel (with focal/baseline), pixels; the same with '_noc'.

        NaN where a region has no pixels."""
        out: dict[str, float] = {"n": self.images}
        for region, s in self.sums.items():
            tail = "" if region == "all" else "_noc"
            n = s["pixels"]
            frac = (lambda v: v / n) if n else (lambda v: float("nan"))   # noqa: E731
            out |= {f"epe{tail}": frac(s["abs"]), f"d1{tail}": frac(s["d1"]), f"pixels{tail}": n,
                    **{f"bad{t}{tail}": frac(s[f"bad{t}"]) for t in THRESHOLDS}}
            if self.focal is not None:
                m = s["depth_pixels"]
                out[f"abs_rel{tail}"] = s["abs_rel"] / m if m else float("nan")
        return out


def disparity_errors(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                     occluded: torch.Tensor | None = None, focal: float | None = None,
                     baseline: float | None = None, max_depth: float | None = None) -> dict[str, float]:
    """The StereoMeter figures of one batch: pred, target (px), valid, occluded (bool), one shape."""
    meter = StereoMeter(focal, baseline, max_depth=max_depth)
    meter.update(pred, target, valid, occluded)
    return meter.summary()
