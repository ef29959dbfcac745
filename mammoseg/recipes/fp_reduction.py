"""False-positive reduction: the classic CAD second stage, a small classifier that re-ranks the
segmentation's lesion candidates.

The UNet's candidates are connected regions of its probability map, scored by their peak. Many
of the false ones sit on dense tissue that looks like a mass at the scale of a window; a second
look at a patch of the image around each candidate can tell some of them apart. The classifier
is trained on the candidates of the *training* images only (hits against false positives, plus
a patch centred on every training mass so a fold whose model finds few masses still has
positives), with the eight flips and quarter turns as augmentation.
It changes only the candidates' scores, so the mask (and its Dice) stays as it was; the FROC
and the sensitivity at a given number of false positives per image move.

A candidate's new score is the geometric mean of its segmentation score and the classifier's
probability (`combine_scores`): a candidate the UNet is sure of is not thrown away on the
classifier's word alone.

Example:
    >>> reducer = CandidateClassifier(FPReductionConfig(epochs=2))
    >>> reducer.fit(train_works, train_probs)  # doctest: +SKIP
    >>> rescored = reducer.rescore(work, prob_work, candidates)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from mammoseg.metrics import Region
from mammoseg.recipes.candidates import extract_candidates
from mammoseg.recipes.preprocess import WorkingImage, prepare_records

FP_MODEL_FILE = "fp_classifier.keras"


@dataclass(frozen=True)
class FPReductionConfig:
    """Settings of the candidate classifier.

    Args:
        patch_size: side of the square patch around a candidate, in working pixels (48 at the
            default 384-pixel working size spans three median mini-MIAS mass radii each way).
        filters: width of the first of three convolution blocks (doubling after each).
        epochs, batch_size, learning_rate: training budget (Adam, binary cross-entropy with
            the classes weighted to balance).
        with_probability: give the classifier the probability map as a second channel; off by
            default, so its opinion is the image's alone and independent of the score it
            re-ranks (on training images the map is close to the truth, which it would learn
            to copy).
        weight: exponent of the classifier in the combined score: ``seg ** (1 - weight) *
            classifier ** weight`` (0.5: geometric mean; 1: the classifier alone).
        seed: initial weights, augmentation and shuffling.
        working_size: the recipe working size its patches were cut at (set by
            `train_candidate_classifier`; `CandidateClassifier.load` refuses a model of another
            size); None: not recorded.

    Raises:
        ValueError: a value outside its range, naming the field.
    """

    patch_size: int = 48
    filters: int = 16
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    with_probability: bool = False
    weight: float = 0.5
    seed: int = 0
    working_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("patch_size", "filters", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, received {value!r}")
        if self.working_size is not None and (
            isinstance(self.working_size, bool)
            or not isinstance(self.working_size, int)
            or self.working_size < 1
        ):
            raise ValueError(
                f"`working_size` must be a positive integer or None, received {self.working_size!r}"
            )
        if self.patch_size % 8:
            raise ValueError(f"`patch_size` must be a multiple of 8, received {self.patch_size}")
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be positive, received {self.learning_rate!r}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"`weight` must be in [0, 1], received {self.weight!r}")


def to_working(work: WorkingImage, point: tuple[float, float]) -> tuple[float, float]:
    """A (row, col) of the original image as (row, col) at the working resolution.

    Example:
        >>> from mammoseg.recipes.breast_crop import BreastCrop
        >>> crop = BreastCrop((100, 500, 0, 200), (1024, 1024), np.ones((400, 200), bool))
        >>> work = WorkingImage(np.zeros((200, 100), np.float32), None, crop, 0.0)
        >>> to_working(work, (300.0, 50.0))
        (100.0, 25.0)
    """
    row0, row1, col0, col1 = work.crop.box
    height, width = work.image.shape
    return (
        (point[0] - row0) * height / (row1 - row0),
        (point[1] - col0) * width / (col1 - col0),
    )


def extract_patches(
    work: WorkingImage, probability: np.ndarray, centres: Sequence[tuple[float, float]], size: int
) -> np.ndarray:
    """(N, size, size, 2) patches of the working image and its probability map around each
    (row, col) centre (working pixels); outside the image the image channel holds the
    background value and the probability 0.

    Raises:
        ValueError: ``probability`` has another shape than the working image.

    Example:
        >>> work = WorkingImage(np.arange(16, dtype=np.float32).reshape(4, 4), None, None, -1.0)
        >>> extract_patches(work, np.zeros((4, 4)), [(0.0, 0.0)], 2)[0, :, :, 0]
        array([[-1., -1.],
               [-1.,  0.]], dtype=float32)
    """
    probability = np.asarray(probability, dtype=np.float32)
    if probability.shape != work.image.shape:
        raise ValueError(
            f"`probability` must have the working image's shape {work.image.shape}, received "
            f"{probability.shape}"
        )
    half = size // 2
    image = np.pad(work.image, half, constant_values=work.background)
    prob = np.pad(probability, half)
    out = np.empty((len(centres), size, size, 2), np.float32)
    for k, (row, col) in enumerate(centres):
        r = int(np.clip(round(row), 0, work.image.shape[0] - 1))
        c = int(np.clip(round(col), 0, work.image.shape[1] - 1))
        out[k, ..., 0] = image[r : r + size, c : c + size]
        out[k, ..., 1] = prob[r : r + size, c : c + size]
    return out


def training_patches(
    works: Sequence[WorkingImage],
    probabilities: Sequence[np.ndarray],
    size: int,
    candidate_threshold: float = 0.2,
    min_area: int = 4,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Patches and labels from training images with truth: every candidate of each map (1 if its
    centroid lies on the truth mask, else 0) and a patch centred on every truth lesion (1).

    Returns:
        (patches (N, size, size, 2), labels (N,) float32, counts {"hits", "false_positives",
        "lesions"}).

    Raises:
        ValueError: an image without truth (``mask`` None), or maps and images of different
            lengths.
    """
    if len(works) != len(probabilities):
        raise ValueError(
            f"one probability map per image expected: {len(works)} images, "
            f"{len(probabilities)} maps"
        )
    patches, labels = [], []
    counts = {"hits": 0, "false_positives": 0, "lesions": 0}
    for work, prob in zip(works, probabilities):
        if work.mask is None:
            raise ValueError(f"image {work.image_id or '?'} has no truth mask to label candidates")
        regions = extract_candidates(prob, candidate_threshold, min_area)
        centres = [r.centroid for r in regions]
        hit = [
            bool(work.mask[int(round(row)), int(round(col))]) for row, col in centres
        ]  # a region's centroid on the truth
        centres += [(row, col) for row, col, _ in work.lesions]
        hit += [True] * len(work.lesions)
        counts["hits"] += sum(hit[: len(regions)])
        counts["false_positives"] += len(regions) - sum(hit[: len(regions)])
        counts["lesions"] += len(work.lesions)
        if centres:
            patches.append(extract_patches(work, prob, centres, size))
            labels.append(np.asarray(hit, np.float32))
    if not patches:
        return np.zeros((0, size, size, 2), np.float32), np.zeros(0, np.float32), counts
    return np.concatenate(patches), np.concatenate(labels), counts


def dihedral(patches: np.ndarray, k: int) -> np.ndarray:
    """The k-th of the eight flips and quarter turns (k in 0..7) of (N, H, W, C) patches."""
    out = np.rot90(patches, k % 4, axes=(1, 2))
    return out[:, :, ::-1] if k >= 4 else out


def combine_scores(segmentation: float, classifier: float, weight: float = 0.5) -> float:
    """``segmentation ** (1 - weight) * classifier ** weight``.

    Example:
        >>> combine_scores(0.81, 0.25)
        0.45
    """
    return float(segmentation ** (1.0 - weight) * classifier**weight)


def build_classifier(config: FPReductionConfig):
    """A small CNN: three conv-BN-ReLU-pool blocks, global average pooling, a sigmoid unit."""
    import keras

    channels = 2 if config.with_probability else 1
    inputs = keras.Input((config.patch_size, config.patch_size, channels), name="candidate_patch")
    x = inputs
    for block in range(3):
        x = keras.layers.Conv2D(
            config.filters * 2**block, 3, padding="same", use_bias=False, name=f"conv{block + 1}"
        )(x)
        x = keras.layers.BatchNormalization(name=f"bn{block + 1}")(x)
        x = keras.layers.Activation("relu", name=f"relu{block + 1}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{block + 1}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.3, seed=config.seed, name="dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="lesion")(x)
    return keras.Model(inputs, outputs, name="fp_classifier")


class OneClassCandidates(ValueError):
    """The training candidates are all hits or all false positives: nothing to tell apart (a
    model that finds no mass in its training images, or finds nothing else)."""


class CandidateClassifier:
    """The second stage: trained on training-image candidates, re-scores new candidates.

    Args:
        config: `FPReductionConfig`.
        model: an already trained classifier (`load`); None builds a new one at `fit`.

    Example:
        >>> reducer = CandidateClassifier(FPReductionConfig())
        >>> info = reducer.fit(train_works, train_probs)  # doctest: +SKIP
        >>> candidates = reducer.rescore(work, prob_work, candidates)  # doctest: +SKIP
    """

    def __init__(self, config: FPReductionConfig | None = None, model=None) -> None:
        self.config = config or FPReductionConfig()
        self.model = model

    def fit(
        self,
        works: Sequence[WorkingImage],
        probabilities: Sequence[np.ndarray],
        *,
        candidate_threshold: float = 0.2,
        min_area: int = 4,
        verbose: int = 0,
    ) -> dict:
        """Train on the candidates of ``works`` (images with truth) and their working-resolution
        probability maps; returns the counts and the final training loss.

        Raises:
            OneClassCandidates: no positive or no negative patch (nothing to tell apart); a
                `ValueError`.
        """
        import keras

        config = self.config
        patches, labels, counts = training_patches(
            works, probabilities, config.patch_size, candidate_threshold, min_area
        )
        positives = int(labels.sum())
        if positives == 0 or positives == len(labels):
            raise OneClassCandidates(
                f"the candidate classifier needs both hits and false positives: {counts} on "
                f"{len(works)} training images"
            )
        patches = self._channels(patches)
        augmented = np.concatenate([dihedral(patches, k) for k in range(8)])
        targets = np.tile(labels, 8)
        n = len(labels)
        weights = {0: n / (2.0 * (n - positives)), 1: n / (2.0 * positives)}
        keras.utils.set_random_seed(config.seed)
        self.model = build_classifier(config)
        self.model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate), loss="binary_crossentropy"
        )
        history = self.model.fit(
            augmented,
            targets,
            batch_size=config.batch_size,
            epochs=config.epochs,
            class_weight=weights,
            shuffle=True,
            verbose=verbose,
        )
        return {**counts, "patches": int(len(labels)), "loss": float(history.history["loss"][-1])}

    def _channels(self, patches: np.ndarray) -> np.ndarray:
        return patches if self.config.with_probability else patches[..., :1]

    def predict(self, patches: np.ndarray) -> np.ndarray:
        """Lesion probability of each (N, P, P, 2) patch (`extract_patches`: image, probability),
        averaged over the eight flips."""
        if self.model is None:
            raise RuntimeError("the candidate classifier is not trained: call fit() or load()")
        if len(patches) == 0:
            return np.zeros(0, np.float32)
        patches = self._channels(np.asarray(patches, np.float32))
        outputs = [
            np.asarray(self.model.predict_on_batch(dihedral(patches, k)), np.float32).ravel()
            for k in range(8)
        ]
        return np.mean(outputs, axis=0)

    def rescore(
        self, work: WorkingImage, probability: np.ndarray, candidates: Sequence[Region]
    ) -> list[Region]:
        """``candidates`` (original pixels) with `combine_scores` as their score, best first.

        Args:
            work: the image at the working resolution.
            probability: its working-resolution probability map.
            candidates: regions in the original image's pixels (`evaluate_records`).
        """
        if not candidates:
            return []
        centres = [to_working(work, region.centroid) for region in candidates]
        probs = self.predict(extract_patches(work, probability, centres, self.config.patch_size))
        rescored = [
            replace(region, score=combine_scores(region.score, float(p), self.config.weight))
            for region, p in zip(candidates, probs)
        ]
        return sorted(rescored, key=lambda region: -region.score)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the classifier as ``fp_classifier.keras`` and its settings beside it."""
        from mammoseg.training import save_json

        if self.model is None:
            raise RuntimeError("the candidate classifier is not trained: nothing to save")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / FP_MODEL_FILE
        # Settings first: the model file, renamed into place last, marks a complete save.
        save_json(folder / "fp_classifier.json", asdict(self.config))
        partial = path.with_name(path.name + ".partial.keras")
        self.model.save(partial)
        os.replace(partial, path)
        return path

    @classmethod
    def load(
        cls, folder: str | os.PathLike, *, working_size: int | None = None
    ) -> CandidateClassifier:
        """Read what `save` wrote.

        Args:
            folder: the folder `save` wrote.
            working_size: the working size of the recipe model it will serve; a classifier
                trained at another (recorded) size is refused: its patches would cover
                another area of the breast.

        Raises:
            FileNotFoundError: no ``fp_classifier.keras`` in ``folder``.
            ValueError: ``fp_classifier.json`` missing or unusable (naming it), or trained at
                another working size than ``working_size``.

        Example:
            >>> CandidateClassifier.load("runs/fp", working_size=384)  # doctest: +SKIP
        """
        import json

        import keras

        folder = Path(folder)
        path = folder / FP_MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {FP_MODEL_FILE} in {folder}")
        settings = folder / "fp_classifier.json"
        try:
            config = FPReductionConfig(**json.loads(settings.read_text()))
        except (OSError, TypeError, ValueError) as err:  # missing, not JSON, unknown key
            raise ValueError(f"{settings}: unusable classifier settings: {err}") from err
        if None not in (working_size, config.working_size) and working_size != config.working_size:
            raise ValueError(
                f"{folder}: the classifier was trained on candidates of a model with working "
                f"size {config.working_size}, this model's is {working_size}; use the classifier "
                "saved with this model (its run's fp/ or fp_<k>/ folder)"
            )
        return cls(config, keras.saving.load_model(path, compile=False))


def train_candidate_classifier(
    predictor, records: Sequence, folder: str | os.PathLike, *, seed: int = 0
) -> tuple[CandidateClassifier, dict]:
    """The second stage of a trained recipe model: its candidates on ``records`` (training
    images with truth; never the images it will be judged on) labelled hits or false positives,
    a `CandidateClassifier` trained on them and saved in ``folder``.

    Args:
        predictor: the recipe's `mammoseg.recipes.Predictor` (its candidate threshold and
            minimum area define the candidates).
        records: the training (and validation) records.
        folder: where ``fp_classifier.keras`` and its settings go.
        seed: the classifier's seed.

    Returns:
        (the classifier, the counts of `CandidateClassifier.fit`).

    Raises:
        OneClassCandidates: only hits or only false positives.

    Example:
        >>> reducer, info = train_candidate_classifier(  # doctest: +SKIP
        ...     predictor, train + val, "runs/fp"
        ... )
        >>> evaluate_records(predictor, test, [0.5], rescore=reducer.rescore)  # doctest: +SKIP
    """
    config = predictor.config
    works = prepare_records(records, config)
    probabilities = [predictor.predict_working(work) for work in works]
    reducer = CandidateClassifier(FPReductionConfig(seed=seed, working_size=config.working_size))
    info = reducer.fit(
        works,
        probabilities,
        candidate_threshold=config.candidate_threshold,
        min_area=config.min_candidate_area,
    )
    reducer.save(folder)
    return reducer, info


__all__ = [
    "FP_MODEL_FILE",
    "CandidateClassifier",
    "FPReductionConfig",
    "OneClassCandidates",
    "train_candidate_classifier",
    "build_classifier",
    "combine_scores",
    "dihedral",
    "extract_patches",
    "to_working",
    "training_patches",
]
