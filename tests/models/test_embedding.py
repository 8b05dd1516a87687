import math

import pytest
import torch

from pixelwise.models import create_model, list_models
from pixelwise.models.embedding import cosface_logits, cosface_loss


def test_cosface_loss_is_the_formula():
    cosine = torch.tensor([[0.9, 0.2, -0.1], [0.3, 0.5, 0.4]])
    labels = torch.tensor([0, 2])
    s, m = 10.0, 0.3
    by_hand = []
    for c, y in zip(cosine.tolist(), labels.tolist()):
        target = math.exp(s * (c[y] - m))
        others = sum(math.exp(s * v) for j, v in enumerate(c) if j != y)
        by_hand.append(-math.log(target / (target + others)))
    assert cosface_loss(cosine, labels, s, m).item() == pytest.approx(sum(by_hand) / 2, rel=1e-6)
    assert torch.allclose(cosface_logits(cosine, labels, s, 0.0), s * cosine)


@pytest.mark.parametrize("in_chans", [1, 3])
def test_embeddings_are_unit_vectors_and_the_margin_head_trains(in_chans):
    assert "embedding_resnet" in list_models("embedding")
    torch.manual_seed(0)
    model = create_model("embedding_resnet", num_classes=5, in_chans=in_chans, dim=16, widths=(8, 16), depths=(1, 1))
    x = torch.rand(6, in_chans, 24, 24)
    e = model(x)
    assert e.shape == (6, 16) and torch.allclose(e.norm(dim=1), torch.ones(6), atol=1e-5)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    logits = model(x, labels)
    model.eval()
    cosine = model(x) @ torch.nn.functional.normalize(model.centres, dim=1).T
    model.train()
    assert logits.shape == (6, 5)
    torch.nn.functional.cross_entropy(logits, labels).backward()
    assert model.centres.grad is not None and model.stem[0].weight.grad.abs().sum() > 0
    assert cosine.abs().max() <= 1 + 1e-5
    with pytest.raises(ValueError, match="num_classes=0"):
        create_model("embedding_resnet", dim=8, widths=(8,), depths=(1,))(x[:2, :, :8, :8], labels[:2])
