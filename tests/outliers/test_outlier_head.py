"""A segmenter with a trained outlier head separates pasted objects on a tiny case."""
import torch
import torch.nn as nn

from pixelwise.models.outputs import SegmentationOutput
from pixelwise.config import OutliersConfig
from pixelwise.data.scenes import generate_scenes
from pixelwise.outliers.evaluate import OutlierEvaluation
from pixelwise.outliers.training import add_negatives, outlier_loss, outlier_model_kwargs

SIZE = 32


class TinySegmenter(nn.Module):
    """Stand-in for a segmenter with an outlier head: dilated convolutions at full resolution."""

    def __init__(self, num_classes: int = 11, width: int = 16, outlier_head: bool = False):
        super().__init__()
        layers, c = [], 3
        for d in (1, 2, 4, 1):
            layers += [nn.Conv2d(c, width, 3, padding=d, dilation=d), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(width, num_classes, 1)
        self.outlier = nn.Conv2d(width, 1, 1) if outlier_head else None

    def forward(self, x):
        f = self.body(x)
        return SegmentationOutput(self.classifier(f), self.outlier(f)) if self.outlier is not None else self.classifier(f)


def scenes(n: int, tmp_path):
    images, masks = generate_scenes("train", n, 0, size=SIZE, root=tmp_path, progress=False)
    return torch.from_numpy(images).float().div(255)[:, None].expand(-1, 3, -1, -1), torch.from_numpy(masks).long()


def train_tiny(mode: str, tmp_path, steps: int = 120) -> tuple[nn.Module, OutliersConfig]:
    torch.manual_seed(0)
    # Without jitter: a few steps suffice to see the mechanism work (jitter makes the task harder).
    cfg = OutliersConfig(mode=mode, paste_prob=1.0, loss_weight=1.0, jitter=False)
    model = TinySegmenter(**{"num_classes": 11, **outlier_model_kwargs(cfg, 11)})
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    x_all, y_all = scenes(64, tmp_path)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (8,), generator=gen)
        x, y = add_negatives(x_all[idx], y_all[idx], cfg, gen, SIZE / 128)
        loss = outlier_loss(model(x), y, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), cfg


def held_out_evaluation(model, cfg, tmp_path) -> dict:
    x, y = scenes(96, tmp_path)
    # Scenes and paste positions the model never saw; digits are the training source (a tiny case).
    x, (masks, targets) = add_negatives(x[64:], y[64:], cfg, torch.Generator().manual_seed(123), SIZE / 128)
    result = OutlierEvaluation(11, ["max_softmax", "entropy", "max_logit", "outlier_head"])
    with torch.no_grad():
        result.update(model(x), masks, targets, cfg.mode)
    return result.summary()


def test_two_heads_separate_pasted_objects(tmp_path):
    torch.set_num_threads(2)
    model, cfg = train_tiny("two_heads", tmp_path)
    s = held_out_evaluation(model, cfg, tmp_path)
    assert s["outlier_head_auroc"] > 0.9, s
    assert s["outlier_head_ap"] > 2 * s["max_softmax_ap"], s
    assert s["outlier_head_fpr95"] < 0.25, s
    assert s["ap"] == s["outlier_head_ap"]   # the head is the primary score when there is one


def test_single_head_learns_outlier_class(tmp_path):
    torch.set_num_threads(2)
    model, cfg = train_tiny("single_head", tmp_path, steps=80)
    assert model.classifier.out_channels == 12   # K inlier classes + 'outlier'
    s = held_out_evaluation(model, cfg, tmp_path)
    assert s["outlier_head_auroc"] > 0.9, s
    assert s["outlier_head_ap"] > 2 * s["max_softmax_ap"], s


def test_outlier_loss_weighting():
    g = torch.Generator().manual_seed(0)
    logits, head = torch.randn(2, 4, 5, 5, generator=g), torch.randn(2, 1, 5, 5, generator=g)
    masks = torch.randint(0, 4, (2, 5, 5), generator=g)
    targets = (torch.rand(2, 5, 5, generator=g) < 0.3).long()
    masks[targets == 1] = 255
    targets[0, 0] = 255
    masks[0, 0] = 255
    keep = targets != 255
    semantic = torch.nn.functional.cross_entropy(logits, masks, ignore_index=255)
    p = head[:, 0][keep].sigmoid()
    bce = -(targets[keep] * p.log() + (1 - targets[keep]) * (1 - p).log()).mean()
    two = OutliersConfig(mode="two_heads", loss_weight=2.5)
    assert torch.allclose(outlier_loss(SegmentationOutput(logits, head), (masks, targets), two), semantic + 2.5 * bce, atol=1e-6)
    # Single head: pasted pixels are class K, their terms weighted, mean over non-ignored pixels.
    single = OutliersConfig(mode="single_head", loss_weight=3.0)
    labels = torch.where(targets == 1, 3, masks)
    nll = -logits.log_softmax(1).gather(1, labels.clamp(max=3)[:, None])[:, 0]
    valid = labels != 255
    w = torch.where(targets == 1, 3.0, 1.0)
    expected = (nll * w)[valid].sum() / valid.sum()
    assert torch.allclose(outlier_loss(logits, (masks, targets), single), expected, atol=1e-6)


def test_outlier_config_errors_name_the_key():
    import pytest

    from pixelwise.config import load_config
    from pixelwise.errors import PixelwiseError
    with pytest.raises(PixelwiseError, match="outliers.mode"):
        load_config(None, ["outliers.mode=three_heads"])
    with pytest.raises(PixelwiseError, match="did you mean 'loss_weight'"):
        load_config(None, ["outliers.loss_weigth=2"])


def test_scores_are_higher_for_outliers():
    from scipy.stats import entropy as scipy_entropy

    from pixelwise.outliers.scores import entropy, max_logit, max_softmax, outlier_probability, outlier_scores
    logits = torch.randn(2, 5, 3, 4, generator=torch.Generator().manual_seed(0)) * 3
    probs = logits.softmax(1)
    assert torch.allclose(torch.exp(-max_softmax(logits)), probs.amax(1), atol=1e-6)
    assert torch.allclose(entropy(logits), torch.from_numpy(scipy_entropy(probs.numpy(), axis=1)).float(), atol=1e-5)
    assert torch.equal(max_logit(logits), -logits.amax(1))
    confident = torch.zeros(1, 5, 1, 1)
    confident[0, 0] = 10.0
    flat = torch.zeros(1, 5, 1, 1)
    for name, s in outlier_scores(torch.cat([confident, flat])).items():
        assert s[1, 0, 0] > s[0, 0, 0], name   # the uniform prediction is the more outlying pixel
    single = outlier_scores(logits, "single_head")
    assert torch.allclose(single["outlier_head"].exp(), probs[:, -1], atol=1e-6)
    assert torch.allclose(outlier_probability(logits, "single_head"), probs[:, -1], atol=1e-6)
    assert torch.allclose(single["max_softmax"], max_softmax(logits[:, :-1]))
