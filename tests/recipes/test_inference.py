"""Sliding windows and flips: an identity network gives the image back, exactly."""

import numpy as np
import pytest

from mammoseg.recipes import sliding_window_predict, window_starts


def identity(batch):
    return batch


def test_windows_cover_the_image_with_overlap():
    assert window_starts(300, 128, 0.5) == [0, 57, 115, 172]
    assert window_starts(128, 128, 0.5) == [0]
    starts = window_starts(1000, 160, 0.5)
    assert starts[0] == 0 and starts[-1] == 840
    assert max(np.diff(starts)) <= 80  # at least half of each window overlaps the next


@pytest.mark.parametrize("tta", [False, True])
@pytest.mark.parametrize("shape", [(100, 70), (40, 30), (64, 64)])
def test_identity_model_reproduces_the_image(shape, tta):
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    out = sliding_window_predict(identity, image, 32, overlap=0.5, tta=tta, batch_size=3)
    assert out.shape == shape
    np.testing.assert_allclose(out, image, atol=1e-6)


def test_flip_tta_averages_the_four_flips():
    # A "model" that marks the top-left pixel of each window: without TTA only top-left
    # corners are marked; with TTA the four corners each get a quarter.
    def corner(batch):
        out = np.zeros_like(batch)
        out[:, 0, 0] = 1.0
        return out

    image = np.zeros((16, 16), np.float32)
    plain = sliding_window_predict(corner, image, 16, tta=False)
    assert plain[0, 0] == 1.0 and plain.sum() == 1.0
    flipped = sliding_window_predict(corner, image, 16, tta=True)
    for r, c in ((0, 0), (0, 15), (15, 0), (15, 15)):
        assert flipped[r, c] == pytest.approx(0.25)
    assert flipped.sum() == pytest.approx(1.0)


def test_logits_become_probabilities():
    image = np.zeros((20, 20), np.float32)
    out = sliding_window_predict(identity, image, 16, from_logits=True)
    np.testing.assert_allclose(out, 0.5, atol=1e-6)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="`image` must be 2-D"):
        sliding_window_predict(identity, np.zeros((2, 8, 8)), 8)
    with pytest.raises(ValueError, match="`overlap` must be in"):
        sliding_window_predict(identity, np.zeros((8, 8)), 8, overlap=1.0)
