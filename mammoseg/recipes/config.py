"""`RecipeConfig`: every number the recipe needs, saved beside the model as ``recipe.json``.

The same file drives training and inference: `mammoseg predict` reads it to crop, resize, slide
windows and threshold exactly as the experiment did.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from mammoseg.checks import check_choice, check_positive_int

RECIPE_FILE = "recipe.json"
LOSSES = ("dice_bce", "focal_tversky")
INIT_SUFFIXES = (".keras", ".weights.h5")


def check_scale_range(value) -> tuple[float, float]:
    """``value`` as a (low, high) pair of patch zoom factors with 0.25 <= low <= high <= 4.

    Raises:
        ValueError: anything else, with the value received.
    """
    scale = tuple(float(v) for v in value)
    if len(scale) != 2 or not 0.25 <= scale[0] <= scale[1] <= 4.0:
        raise ValueError(
            f"`scale_range` must be (low, high) with 0.25 <= low <= high <= 4, received {value!r}"
        )
    return scale


@dataclass(frozen=True)
class RecipeConfig:
    """Settings of the whole-mammogram mass segmentation recipe.

    Args:
        working_size: long side, in pixels, that the *original image* is resized to; the breast
            crop is resized by the same factor, so every image of one database gets one pixel
            spacing (mini-MIAS: 1024 → 384 leaves a median mass radius of 16 px).
        patch_size: side of the square training patches and inference windows (a multiple of
            ``2**depth``).
        lesion_fraction: share of patches centred on a lesion (nnU-Net: one third); the rest are
            centred on a random breast pixel.
        overlap: share of a window shared with its neighbour at inference.
        tta: average the four flips at inference.
        base_filters, depth: UNet width and depth (batch norm on, dropout off); with an
            ``encoder``, the decoder's full-resolution width (16: 256-128-64-32-16) and how many
            of the backbone's five stride-2 stages are used (at most 5).
        loss: "dice_bce" (Dice + BCE) or "focal_tversky".
        learning_rate: Adam's initial rate (cosine decay to 5 % over ``epochs``).
        batch_size, steps_per_epoch, epochs: training budget.
        patience: epochs without a better validation Dice before stopping early.
        time_budget_minutes: stop training after this long (None: no limit).
        threshold: probability threshold of the mask (chosen on the validation split).
        mask_regions: keep only this many regions of the mask, those of highest peak probability
            (None: every region); chosen on the validation split, like ``threshold``.
        candidate_threshold: lower threshold that turns the map into lesion candidates.
        min_candidate_area: candidates smaller than this many working-resolution pixels are
            dropped.
        crop_margin: dilation of the breast region, as a share of the image's long side.
        kinds: lesion kinds trained and evaluated.
        scale_range: (low, high) zoom of training patches, drawn log-uniformly (1, 1: off); a
            small database holds few masses, and seeing each at several sizes covers the
            range of radii better than the training set alone.
        encoder: None (the plain UNet) or a keras.applications backbone as the UNet's encoder,
            one of `mammoseg.models.encoders.list_encoders()` ("mobilenetv2", "resnet50", ...).
        encoder_weights: with an encoder, None (random), "imagenet" (downloaded by Keras) or the
            path of the backbone's weights file; only training loads them.
        init_weights: None (a random start) or a trained recipe model of the same
            architecture (``model.keras`` or ``.weights.h5``) to start from, e.g. one pre-trained
            on the built-in phantom (``beyond_mass_segmentation.py --set init_weights=PATH``);
            only training loads it, and resuming an interrupted run restores its own checkpoint
            instead.

    Raises:
        ValueError: any value outside its range, naming the field.

    Example:
        >>> RecipeConfig(working_size=256, patch_size=128).scale_for((1024, 1024))
        0.25
    """

    working_size: int = 384
    patch_size: int = 160
    lesion_fraction: float = 1.0 / 3.0
    overlap: float = 0.5
    tta: bool = True
    base_filters: int = 16
    depth: int = 5
    loss: str = "dice_bce"
    learning_rate: float = 2e-3
    batch_size: int = 8
    steps_per_epoch: int = 80
    epochs: int = 40
    patience: int = 8
    time_budget_minutes: float | None = 20.0
    threshold: float = 0.5
    mask_regions: int | None = None
    candidate_threshold: float = 0.2
    min_candidate_area: int = 4
    crop_margin: float = 0.02
    kinds: tuple[str, ...] = ("mass",)
    scale_range: tuple[float, float] = (0.75, 1.33)
    encoder: str | None = None
    encoder_weights: str | None = None
    init_weights: str | None = None

    def __post_init__(self) -> None:
        for name in (
            "working_size",
            "patch_size",
            "base_filters",
            "depth",
            "batch_size",
            "steps_per_epoch",
            "epochs",
            "patience",
        ):
            check_positive_int(name, getattr(self, name))
        if self.patch_size % 2**self.depth:
            raise ValueError(
                f"`patch_size` must be a multiple of 2**depth = {2**self.depth}, "
                f"received {self.patch_size}"
            )
        for name, low, high in (
            ("lesion_fraction", 0.0, 1.0),
            ("threshold", 0.0, 1.0),
            ("candidate_threshold", 0.0, 1.0),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"`{name}` must be in [{low}, {high}], received {value!r}")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"`overlap` must be in [0, 1), received {self.overlap!r}")
        if not 0.0 <= self.crop_margin < 0.5:
            raise ValueError(f"`crop_margin` must be in [0, 0.5), received {self.crop_margin!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"`loss` must be one of {LOSSES}, received {self.loss!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be positive, received {self.learning_rate!r}")
        if self.time_budget_minutes is not None and self.time_budget_minutes <= 0:
            raise ValueError(
                f"`time_budget_minutes` must be positive or None, received "
                f"{self.time_budget_minutes!r}"
            )
        regions = self.mask_regions
        if regions is not None and (
            isinstance(regions, bool) or not isinstance(regions, int) or regions < 1
        ):
            raise ValueError(
                f"`mask_regions` must be None or a positive integer, received {regions!r}"
            )
        if self.min_candidate_area < 1:
            raise ValueError(
                f"`min_candidate_area` must be >= 1, received {self.min_candidate_area!r}"
            )
        self._check_encoder()
        if self.init_weights is not None and not (
            isinstance(self.init_weights, str) and self.init_weights.endswith(INIT_SUFFIXES)
        ):
            raise ValueError(
                f"`init_weights` must be None or the path of a {' or '.join(INIT_SUFFIXES)} file "
                f"(a string), received {self.init_weights!r}"
            )
        object.__setattr__(self, "kinds", tuple(self.kinds))
        object.__setattr__(self, "scale_range", check_scale_range(self.scale_range))

    def _check_encoder(self) -> None:
        if self.encoder is None:
            if self.encoder_weights is not None:
                raise ValueError(
                    f"`encoder_weights` needs an `encoder`, received encoder=None, "
                    f"encoder_weights={self.encoder_weights!r}"
                )
            return
        # Imported here: the plain recipe's config stays free of Keras.
        from mammoseg.models.encoders import MAX_DEPTH, list_encoders

        check_choice("encoder", self.encoder, list_encoders())
        if self.depth > MAX_DEPTH:
            raise ValueError(
                f"`depth` must be at most {MAX_DEPTH} with an encoder, received {self.depth}"
            )
        if self.patch_size < 32:
            raise ValueError(
                f"`patch_size` must be at least 32 with an encoder, received {self.patch_size}"
            )
        if self.encoder_weights is not None and not isinstance(self.encoder_weights, str):
            raise ValueError(
                "`encoder_weights` must be None, 'imagenet' or a path (a string), received "
                f"{self.encoder_weights!r}"
            )

    def scale_for(self, shape: tuple[int, int]) -> float:
        """Resize factor from an original image of ``shape`` to the working resolution."""
        return self.working_size / float(max(shape))

    def with_threshold(self, threshold: float) -> RecipeConfig:
        return replace(self, threshold=float(threshold))

    def with_postprocessing(self, threshold: float, mask_regions: int | None) -> RecipeConfig:
        """A copy with the mask threshold and region limit chosen on the validation split."""
        return replace(self, threshold=float(threshold), mask_regions=mask_regions)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["kinds"] = list(self.kinds)
        out["scale_range"] = list(self.scale_range)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> RecipeConfig:
        """Build from a dict (unknown keys raise, so a typo in recipe.json is not ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown recipe settings {unknown}; valid ones: {sorted(known)}")
        return cls(**values)


def save_recipe(folder: str | os.PathLike, config: RecipeConfig, **extra) -> Path:
    """Write ``recipe.json`` (the config and any ``extra`` facts, e.g. the data) to ``folder``."""
    from mammoseg.training import save_json

    path = Path(folder) / RECIPE_FILE
    save_json(path, {"recipe": config.to_dict(), **extra})
    return path


def load_recipe(path: str | os.PathLike) -> RecipeConfig:
    """Read a recipe: the ``recipe.json`` file, its folder, or a model file beside it.

    Raises:
        FileNotFoundError: no recipe.json there (the message says where it looked).
    """
    path = Path(path)
    if path.is_dir():
        path = path / RECIPE_FILE
    elif path.name != RECIPE_FILE:
        path = path.with_name(RECIPE_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"no {RECIPE_FILE} at {path}: a recipe model needs the recipe.json written beside "
            "its model.keras by the training run"
        )
    return RecipeConfig.from_dict(json.loads(path.read_text())["recipe"])


__all__ = ["LOSSES", "RECIPE_FILE", "RecipeConfig", "load_recipe", "save_recipe"]
