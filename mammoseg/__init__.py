"""mammoseg: breast-tumour segmentation on mammograms with Keras 3.

A runnable reproduction of Aung, Valdivia and Weerawardhena, "Breast Cancer Segmentation: A Deep
Learning Approach" (Stanford CS229, 2018), and a recipe that goes beyond it.

Subpackages: `mammoseg.data` (records, readers, split, augmentation, tf.data pipeline),
`mammoseg.models` (one Keras builder per architecture of the paper), `mammoseg.losses`,
`mammoseg.metrics`.

Modules:
    checks      argument checks with one message per mistake (did you mean ...)
    losses      the paper's weighted cross-entropy and the overlap losses (Dice, Tversky, focal)
    training    precision policy, tf.distribute strategy, callbacks, `fit_segmenter`
    plots       the paper's figures (Fig. 1, 3, 4, loss curves)
    cli         the ``mammoseg`` command
    data/       records, readers, cache, split, augmentation, tf.data (see its docstring)
    models/     one builder per architecture, weights loading, Mask R-CNN (see its docstring)
    metrics/    overlap, detection (FROC) and Keras metrics (see its docstring)
    recipes/    the mass-finding recipe beyond the paper (see its docstring)
"""

__version__ = "0.1.0"
