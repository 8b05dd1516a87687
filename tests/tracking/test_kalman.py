import numpy as np
import pytest

from pixelwise.errors import PixelwiseError
from pixelwise.tracking.kalman import KalmanBoxFilter, cxcyah_to_xyxy, xyxy_to_cxcyah


def test_box_conversion_round_trips():
    boxes = np.array([[10, 20, 40, 80], [0, 0, 1, 2]], float)
    c = xyxy_to_cxcyah(boxes)
    assert c[0].tolist() == [25, 50, 0.5, 60]
    assert np.allclose(cxcyah_to_xyxy(c), boxes)
    with pytest.raises(PixelwiseError, match="xyxy"):
        xyxy_to_cxcyah([[0, 10, 5, 10]])


def test_straight_line_track_converges_to_its_velocity():
    rng = np.random.default_rng(0)
    velocity = np.array([3.0, -1.5])
    true = [np.array([20, 80, 50, 140], float) + np.tile(velocity, 2) * t for t in range(40)]
    kf = KalmanBoxFilter(true[0] + rng.normal(0, 0.5, 4))
    errors = []
    for t in range(1, 40):
        predicted = kf.predict()
        errors.append(np.abs(predicted - true[t]).max())
        kf.update(true[t] + rng.normal(0, 0.5, 4))
    assert np.allclose(kf.velocity[:2], velocity, atol=0.15)
    assert abs(kf.velocity[3]) < 0.1 and abs(kf.velocity[2]) < 0.01
    # The first predictions miss by the velocity the filter does not know yet; later ones by the noise.
    assert np.mean(errors[:3]) > 2 and np.mean(errors[-10:]) < 1.0
    assert np.mean(errors[-10:]) < np.mean(errors[:3]) / 3


def test_prediction_without_updates_keeps_moving_and_grows_uncertain():
    kf = KalmanBoxFilter(np.array([0, 0, 10, 20], float))
    for t in range(1, 6):
        kf.predict()
        kf.update(np.array([2 * t, 0, 10 + 2 * t, 20], float))
    near = kf.mahalanobis(kf.predict()[None])[0]
    spread = np.trace(kf.covariance)
    for _ in range(5):
        box = kf.predict()
    assert box[0] > 10 + 6 * 1.5   # six frames of coasting at nearly the learned 2 px per frame
    assert np.trace(kf.covariance) > spread
    assert near == pytest.approx(0, abs=1e-9)
    assert kf.mahalanobis(np.array([[200, 200, 210, 220]]))[0] > 9.49


def test_position_gate_ignores_the_box_shape():
    from scipy.spatial.distance import mahalanobis
    kf = KalmanBoxFilter(np.array([0, 0, 10, 20], float))
    kf.predict()
    other_shape = np.array([[-5, 5, 15, 15]], float)   # the same centre (5, 10), twice as wide, half as high
    assert kf.mahalanobis(other_shape, only_position=True)[0] == pytest.approx(0, abs=1e-12)
    assert kf.mahalanobis(other_shape)[0] > 9.49
    s = kf._innovation_covariance()[:2, :2]
    moved = np.array([[3, 4, 13, 24]], float)          # centre (8, 14)
    assert kf.mahalanobis(moved, only_position=True)[0] == pytest.approx(
        mahalanobis([8, 14], [5, 10], np.linalg.inv(s)) ** 2, rel=1e-9)
