"""ResNet-50/101 (and a tiny variant for tests) with a feature pyramid, named as matterport's.

Layer names are the contract with the published weight files (``mask_rcnn_coco.h5`` and the
Keras ImageNet ResNet-50 file): ``conv1``, ``bn_conv1``, ``res{stage}{block}_branch{1,2a,2b,2c}``,
``bn{stage}{block}_branch…``, ``fpn_c5p5`` … ``fpn_p2`` … ``fpn_p6``.

Example:
    >>> model = build_backbone("resnet_tiny", pyramid_size=16)
    >>> [tuple(p.shape[1:]) for p in model(np.zeros((1, 64, 64, 3)))]
    [(16, 16, 16), (8, 8, 16), (4, 4, 16), (2, 2, 16), (1, 1, 16)]
"""

from __future__ import annotations

import keras
from keras import layers

# blocks per stage (2, 3, 4, 5) and width divisor for each architecture
ARCHITECTURES = {
    "resnet50": ((3, 4, 6, 3), 1),
    "resnet101": ((3, 4, 23, 3), 1),
    "resnet_tiny": ((1, 1, 1, 1), 8),
}


@keras.saving.register_keras_serializable(package="mammoseg")
class BatchNorm(layers.BatchNormalization):
    """Batch normalisation that stays in inference mode unless ``train_bn`` is True.

    matterport trains with small batches, so by default (``TRAIN_BN = False``) the moving
    statistics are frozen while gamma and beta still learn.

    Example:
        >>> bn = BatchNorm(train_bn=False, name="bn_conv1")
    """

    def __init__(self, train_bn: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.train_bn = bool(train_bn)

    def call(self, inputs, training=None):
        return super().call(inputs, training=bool(training) and self.train_bn)

    def get_config(self):
        return {**super().get_config(), "train_bn": self.train_bn}


def _conv_block(x, kernel_size, filters, stage, block, strides, train_bn, shortcut_conv):
    """Bottleneck block; ``shortcut_conv`` adds the 1x1 projection (`branch1`) on the shortcut."""
    f1, f2, f3 = filters
    prefix = f"{stage}{block}_branch"
    shortcut = x
    x = layers.Conv2D(f1, 1, strides=strides, name=f"res{prefix}2a")(x)
    x = BatchNorm(train_bn, name=f"bn{prefix}2a")(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(f2, kernel_size, padding="same", name=f"res{prefix}2b")(x)
    x = BatchNorm(train_bn, name=f"bn{prefix}2b")(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(f3, 1, name=f"res{prefix}2c")(x)
    x = BatchNorm(train_bn, name=f"bn{prefix}2c")(x)
    if shortcut_conv:
        shortcut = layers.Conv2D(f3, 1, strides=strides, name=f"res{prefix}1")(shortcut)
        shortcut = BatchNorm(train_bn, name=f"bn{prefix}1")(shortcut)
    x = layers.Add(name=f"res{stage}{block}_add")([x, shortcut])
    return layers.Activation("relu", name=f"res{stage}{block}_out")(x)


def resnet_stages(image, architecture: str = "resnet50", train_bn: bool = False):
    """ResNet feature maps C2..C5 (strides 4, 8, 16, 32) of a symbolic ``image`` tensor.

    Raises:
        ValueError: unknown ``architecture``.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"`architecture` must be one of {sorted(ARCHITECTURES)}, received {architecture!r}"
        )
    blocks, divisor = ARCHITECTURES[architecture]
    x = layers.ZeroPadding2D(3, name="conv1_pad")(image)
    x = layers.Conv2D(64 // divisor, 7, strides=2, name="conv1")(x)
    x = BatchNorm(train_bn, name="bn_conv1")(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    outputs = []
    for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=2):
        filters = (width // divisor, width // divisor, 4 * width // divisor)
        for index in range(count):
            # consecutive letters, as matterport's files: ResNet-101's stage 4 runs a..w
            block = chr(ord("a") + index)
            x = _conv_block(
                x,
                3,
                filters,
                stage,
                block,
                strides=(2 if stage > 2 and index == 0 else 1),
                train_bn=train_bn,
                shortcut_conv=index == 0,
            )
        outputs.append(x)
    return outputs


def build_backbone(
    architecture: str = "resnet101",
    pyramid_size: int = 256,
    train_bn: bool = False,
    channels: int = 3,
) -> keras.Model:
    """ResNet + FPN as one Keras model: image (B, H, W, channels) → [P2, P3, P4, P5, P6].

    H and W must be multiples of 64 so that every upsampled level lines up with the next.

    Args:
        architecture: "resnet50", "resnet101" or "resnet_tiny".
        pyramid_size: channels of every P level (matterport's TOP_DOWN_PYRAMID_SIZE).
        train_bn: update batch-norm statistics while training.
        channels: input channels.

    Returns:
        A functional model named "backbone" whose layers carry matterport's names.
    """
    image = keras.Input((None, None, channels), name="input_image")
    c2, c3, c4, c5 = resnet_stages(image, architecture, train_bn)
    p5 = layers.Conv2D(pyramid_size, 1, name="fpn_c5p5")(c5)
    p4 = layers.Add(name="fpn_p4add")(
        [
            layers.UpSampling2D(2, name="fpn_p5upsampled")(p5),
            layers.Conv2D(pyramid_size, 1, name="fpn_c4p4")(c4),
        ]
    )
    p3 = layers.Add(name="fpn_p3add")(
        [
            layers.UpSampling2D(2, name="fpn_p4upsampled")(p4),
            layers.Conv2D(pyramid_size, 1, name="fpn_c3p3")(c3),
        ]
    )
    p2 = layers.Add(name="fpn_p2add")(
        [
            layers.UpSampling2D(2, name="fpn_p3upsampled")(p3),
            layers.Conv2D(pyramid_size, 1, name="fpn_c2p2")(c2),
        ]
    )
    p2 = layers.Conv2D(pyramid_size, 3, padding="same", name="fpn_p2")(p2)
    p3 = layers.Conv2D(pyramid_size, 3, padding="same", name="fpn_p3")(p3)
    p4 = layers.Conv2D(pyramid_size, 3, padding="same", name="fpn_p4")(p4)
    p5 = layers.Conv2D(pyramid_size, 3, padding="same", name="fpn_p5")(p5)
    # P6 only feeds the RPN's largest anchors; subsampling P5 is enough (matterport, FPN paper)
    p6 = layers.MaxPooling2D(1, strides=2, name="fpn_p6")(p5)
    return keras.Model(image, [p2, p3, p4, p5, p6], name="backbone")
