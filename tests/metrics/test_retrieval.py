import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from pixelwise.errors import PixelwiseError
from pixelwise.metrics.retrieval import RetrievalMeter, average_precision, retrieval_metrics


@pytest.mark.parametrize("ties", [False, True])
def test_average_precision_equals_scikit_learn(ties):
    rng = np.random.default_rng(int(ties))
    for _ in range(100):
        m = int(rng.integers(2, 30))
        relevant = rng.random(m) < 0.3
        relevant[rng.integers(m)] = True
        scores = rng.integers(0, 4, m).astype(float) if ties else rng.random(m)
        assert average_precision(relevant, scores) == pytest.approx(average_precision_score(relevant, scores), abs=1e-12)
    with pytest.raises(PixelwiseError, match="no relevant"):
        average_precision([False, False], [0.1, 0.2])


def test_rank1_and_map_by_hand():
    # Two queries in 2-D; gallery angles make the ranking explicit.
    angle = torch.tensor([0.0, 0.1, 0.2, 1.0, 1.5])
    gallery = torch.stack([angle.cos(), angle.sin()], 1)
    gallery_ids = torch.tensor([1, 2, 1, 2, 3])
    query = torch.tensor([[1.0, 0.0], [2.0, 0.0]])     # both point at angle 0; norms do not matter
    m = retrieval_metrics(query, torch.tensor([1, 2]), gallery, gallery_ids)
    # Ranking 1, 2, 1, 2, 3. Query id 1: hits at ranks 1 and 3 -> AP (1 + 2/3) / 2; rank-1 hit.
    # Query id 2: hits at ranks 2 and 4 -> AP (1/2 + 2/4) / 2 = 0.5; rank-1 miss.
    assert m["rank1"] == 0.5 and m["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)
    assert m["queries"] == 2 and m["gallery"] == 5
    # A query without its identity in the gallery is not scored.
    assert retrieval_metrics(query, torch.tensor([1, 9]), gallery, gallery_ids)["queries"] == 1
    meter = RetrievalMeter()
    meter.update(query, torch.tensor([1, 2]), torch.tensor([1, 1]))
    meter.update(gallery, gallery_ids, torch.tensor([0, 0, 0, 0, 2]))   # the last one unused
    assert meter.summary()["gallery"] == 4 and meter.summary()["rank1"] == 0.5
