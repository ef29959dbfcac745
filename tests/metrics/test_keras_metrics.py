"""`AuthorsMeanIoU`: the authors' streamed, integer-cast TF1 mean IoU, on hand-computed batches."""

import keras
import numpy as np
import pytest

from mammoseg.metrics import AuthorsMeanIoU


def test_probabilities_below_one_are_class_zero():
    m = AuthorsMeanIoU()
    # Truth 1 1 0 0; predictions 0.999 1.0 0.0 0.7 -> classes 0 1 0 0.
    # Class 0: TP 2, union 2 + 1 = 3 -> 2/3; class 1: 1 / 2. Mean 7/12.
    m.update_state(np.array([[1.0, 1.0, 0.0, 0.0]]), np.array([[0.999, 1.0, 0.0, 0.7]]))
    assert float(m.result()) == pytest.approx(7 / 12)


def test_the_confusion_matrix_streams_across_epochs_and_the_mean_weights_batches():
    m = AuthorsMeanIoU()
    empty = np.zeros((2, 4), np.float32)  # an empty predictor: IoU = (1 - tumour share) / 2
    truth = np.zeros((2, 4), np.float32)
    truth[0, 0] = 1
    m.update_state(truth, empty)  # 1 of 8 pixels: 7/16
    m.update_state(truth[:1], empty[:1])  # batch of 1; 2 of 12: 5/12
    assert float(m.result()) == pytest.approx((2 * 7 / 16 + 1 * 5 / 12) / 3)
    m.reset_state()  # a new epoch: the running mean restarts, the matrix does not
    m.update_state(truth, empty)  # 3 of 20: 17/40
    assert float(m.result()) == pytest.approx(17 / 40)
    m.reset_stream()
    m.update_state(truth, empty)
    assert float(m.result()) == pytest.approx(7 / 16)


def test_in_fit_training_and_validation_stream_through_one_matrix():
    # As in Keras 2 with `as_keras_metric`: validation batches update the same matrix.
    x = np.zeros((4, 2, 2, 1), np.float32)
    y = np.zeros((4, 2, 2, 1), np.float32)
    y[0, 0, 0, 0] = 1
    y[2, :, 0, 0] = 1
    x_val = np.zeros((2, 2, 2, 1), np.float32)
    y_val = np.zeros((2, 2, 2, 1), np.float32)
    y_val[1, 1, 1, 0] = 1
    inputs = keras.Input((2, 2, 1))
    head = keras.layers.Conv2D(1, 1, activation="sigmoid", kernel_initializer="zeros")
    model = keras.Model(inputs, head(inputs))  # 0.5 everywhere: class 0 after the cast
    model.compile(keras.optimizers.SGD(0.0), "binary_crossentropy", metrics=[AuthorsMeanIoU()])
    history = model.fit(
        x, y, batch_size=2, epochs=2, validation_data=(x_val, y_val), shuffle=False, verbose=0
    ).history

    def value(pixels, tumour):
        return (1 - tumour / pixels) / 2

    # Streamed (pixels, tumour pixels) after each batch: train 8/1, 16/3, val 24/4,
    # train 32/5, 40/7, val 48/8.
    assert history["authors_mean_iou"] == pytest.approx(
        [(value(8, 1) + value(16, 3)) / 2, (value(32, 5) + value(40, 7)) / 2]
    )
    assert history["val_authors_mean_iou"] == pytest.approx([value(24, 4), value(48, 8)])


def test_sample_weight_is_refused_and_config_round_trips():
    m = AuthorsMeanIoU(name="paper")
    with pytest.raises(ValueError, match="does not support `sample_weight`"):
        m.update_state(np.ones((1, 2)), np.ones((1, 2)), sample_weight=np.ones(1))
    again = AuthorsMeanIoU.from_config(m.get_config())
    assert again.name == "paper"


def test_pixel_metrics_weight_images_and_pixels():
    from mammoseg.metrics import DiceMetric, EmptyPredictionRate, ForegroundIoU

    truth = np.array([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    pred = np.array([[0.9, 0.1, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    # Unweighted: TP 1, FP 0, FN 2 -> Dice 2/4. Image 2 weighted 0: TP 1, FN 1 -> 2/3.
    plain, weighted = DiceMetric(), DiceMetric()
    plain.update_state(truth, pred)
    weighted.update_state(truth, pred, sample_weight=np.array([1.0, 0.0]))
    assert float(plain.result()) == pytest.approx(0.5)
    assert float(weighted.result()) == pytest.approx(2 / 3)
    # Per pixel: weight 3 on the missed pixel of image 1 -> TP 1, FN 3 + 1 -> IoU 1/5.
    pixel = np.ones_like(truth)
    pixel[0, 1] = 3.0
    iou = ForegroundIoU()
    iou.update_state(truth, pred, sample_weight=pixel)
    assert float(iou.result()) == pytest.approx(1 / 5)
    # Empty-prediction rate: image 2 (a lesion, predicted empty) weighted 3 -> 3 / 4.
    empty = EmptyPredictionRate()
    empty.update_state(truth, pred, sample_weight=np.array([1.0, 3.0]))
    assert float(empty.result()) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match=r"one `sample_weight` per image, shape \(B,\)"):
        EmptyPredictionRate().update_state(truth, pred, sample_weight=pixel)
