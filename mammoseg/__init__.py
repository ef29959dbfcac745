"""mammoseg: breast-tumour segmentation on mammograms with Keras 3.

A runnable reproduction of Aung, Valdivia and Weerawardhena, "Breast Cancer Segmentation: A Deep
Learning Approach" (Stanford CS229, 2018), and a recipe that goes beyond it.

Subpackages: `mammoseg.data` (records, readers, split, augmentation, tf.data pipeline),
`mammoseg.models` (one Keras builder per architecture of the paper), `mammoseg.losses`,
`mammoseg.metrics`.
"""

__version__ = "0.1.0"
