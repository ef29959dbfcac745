"""Built-in phantom mammograms: the default dataset, calibrated against mini-MIAS.

Real mammograms cannot be downloaded here, so mammoseg ships a generator of synthetic ones that
is hard in the same way as MIAS (facts.md §4):

* a breast outline against a dark background, with the skin-line fall-off of a compressed breast
  and, on most images, a brighter pectoral muscle in the upper corner;
* fibro-glandular texture from power-law (1/f^beta) noise, the usual model of mammographic
  parenchyma, in fatty (F), glandular (G) and dense (D) variants;
* circumscribed, spiculated and ill-defined masses and calcification clusters, benign and
  malignant, with radii drawn to match MIAS (median 44 px at 1024², quartiles 29 and 64) and
  contrast drawn to match MIAS ((mean inside - mean of the ring r..1.5r) / std of the ring:
  median 1.0, quartiles 0.75 and 1.56), so a mass is often barely brighter than the tissue
  around it;
* about 60 % of images without any lesion, as in MIAS (adjustable).

`generate` writes the images in the MIAS layout (PGM + Info.txt), so the built-in data goes
through the very reader that real MIAS data does; `load_phantom_records` generates a default set
once into a cache folder and loads it. The CBIS-DDSM layout (DICOMs and case-description CSVs)
is written by `mammoseg.data.phantom_cbis.write_cbis_phantom`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import distance_transform_edt
from tqdm.auto import tqdm

from mammoseg.data.mias import read_mias
from mammoseg.data.pgm import write_pgm

GENERATOR_VERSION = 2
MASS_STYLES = {"CIRC": "circumscribed", "SPIC": "spiculated", "MISC": "ill-defined"}
# Two-piece log-normal matching the MIAS quartiles: median m, lower quartile q1, upper q3.
_RADIUS_AT_1024 = (44.0, 29.0, 64.0)
_CONTRAST = (1.0, 0.75, 1.56)
_Z75 = 0.6744897501960817


@dataclass
class PhantomLesion:
    """A synthetic lesion: what Info.txt will say, and the pixels it covers."""

    kind: str  # "mass" or "calcification"
    pathology: str  # "benign" or "malignant"
    mias_class: str  # CIRC, SPIC, MISC or CALC
    center: tuple[float, float]  # (row, col)
    radius: float
    contrast: float  # the target contrast it was drawn with
    mask: np.ndarray = field(repr=False)  # bool (H, W): the truth circle


@dataclass
class PhantomImage:
    """One synthetic mammogram: pixels in [0, 1], tissue letter, lesions and breast region."""

    image: np.ndarray
    tissue: str
    lesions: list[PhantomLesion]
    breast_mask: np.ndarray


def _two_piece_lognormal(rng: np.random.Generator, quartiles: tuple[float, float, float]) -> float:
    median, low, high = quartiles
    z = rng.standard_normal()
    spread = np.log(median / low) if z < 0 else np.log(high / median)
    return float(median * np.exp(z * spread / _Z75))


def power_law_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian noise whose power spectrum falls as 1/f^beta."""
    height, width = shape
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freq = np.sqrt(fy * fy + fx * fx)
    freq[0, 0] = 1.0
    amplitude = freq ** (-beta / 2.0)
    amplitude[0, 0] = 0.0
    spectrum = amplitude * (
        rng.standard_normal(amplitude.shape) + 1j * rng.standard_normal(amplitude.shape)
    )
    noise = np.fft.irfft2(spectrum, s=shape)
    noise -= noise.mean()
    return (noise / (noise.std() + 1e-12)).astype(np.float32)


def _breast(rng: np.random.Generator, shape: tuple[int, int]):
    """Breast region (chest wall towards the left) and a compressed-thickness profile in [0, 1].

    MIAS films were centred in the 1024² matrix, so the chest wall sits up to a fifth of the
    width away from the edge, with dark padding beyond it.
    """
    height, width = shape
    rows = np.arange(height, dtype=np.float32)[:, None]
    wall = int(rng.uniform(0.0, 0.2) * width)
    cols = np.arange(width, dtype=np.float32)[None, :] - wall
    share = float(np.clip(rng.lognormal(np.log(0.3), 0.35), 0.1, 0.85))
    aspect = rng.uniform(0.9, 1.5)  # half-height / depth of the half-ellipse
    half_height = min(aspect * np.sqrt(2 * share * height * width / (np.pi * aspect)), 0.6 * height)
    depth = min(2 * share * height * width / (np.pi * half_height), 0.97 * (width - wall))
    center_row = height * rng.uniform(0.42, 0.58)
    # A wobbly outline: the radius is modulated by low-order harmonics of the angle.
    angle = np.arctan2((rows - center_row) / half_height, cols / depth)
    wobble = 1.0 + sum(
        rng.uniform(-0.04, 0.04) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)
    )
    radial = np.sqrt(((rows - center_row) / half_height) ** 2 + (cols / depth) ** 2) / wobble
    region = (radial <= 1.0) & (cols >= 0)
    # Thickness falls off towards the skin line over the outer ~15 % of the radius.
    thickness = np.clip((1.0 - radial) / rng.uniform(0.1, 0.2), 0.0, 1.0) ** 0.6
    return region, thickness.astype(np.float32), (center_row, depth, half_height, wall)


def _pectoral(rng: np.random.Generator, shape, geometry) -> np.ndarray:
    height, width = shape
    center_row, depth, half_height, wall = geometry
    top = center_row - half_height
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :] - wall
    base = rng.uniform(0.25, 0.55) * depth  # width at the top edge of the breast
    length = rng.uniform(0.6, 1.1) * half_height
    return (cols < base * (1.0 - (rows - top) / length)) & (rows >= top)


def _mass_profile(rng, rows, cols, center, radius, style):
    """Density profile in [0, 1] of a mass of the given style around ``center``."""
    dy, dx = rows - center[0], cols - center[1]
    dist = np.sqrt(dy * dy + dx * dx)
    angle = np.arctan2(dy, dx)
    if style == "circumscribed":
        body = 0.9 * radius
        return 1.0 / (1.0 + np.exp((dist - body) / max(0.04 * radius, 0.5)))
    if style == "ill-defined":
        lobes = 1.0 + sum(
            rng.uniform(-0.15, 0.15) * np.cos(k * angle + rng.uniform(0, 6.3)) for k in (2, 3, 4)
        )
        body = 0.75 * radius * lobes
        return 1.0 / (1.0 + np.exp((dist - body) / max(0.18 * radius, 0.8)))
    # spiculated: a dense core and thin radiating spicules reaching to the enclosing circle
    core = 1.0 / (1.0 + np.exp((dist - 0.55 * radius) / max(0.06 * radius, 0.5)))
    spicules = np.zeros_like(dist)
    for _ in range(int(rng.integers(8, 16))):
        theta = rng.uniform(-np.pi, np.pi)
        reach = rng.uniform(0.85, 1.0) * radius
        gap = np.abs(np.angle(np.exp(1j * (angle - theta))))
        across = gap * dist  # distance from the spicule's axis
        spicules = np.maximum(
            spicules,
            np.exp(-((across / max(0.025 * radius, 0.6)) ** 2))
            * (dist < reach)
            * (1 - dist / reach),
        )
    return np.maximum(core, 0.8 * spicules)


def _calc_cluster(rng, rows, cols, center, radius):
    profile = np.zeros(np.broadcast_shapes(rows.shape, cols.shape), dtype=np.float32)
    for _ in range(int(rng.integers(5, 16))):
        r = radius * np.sqrt(rng.uniform(0, 0.8))
        t = rng.uniform(0, 2 * np.pi)
        cy, cx = center[0] + r * np.sin(t), center[1] + r * np.cos(t)
        size = rng.uniform(0.8, 2.0) * max(radius / 40.0, 0.6)
        profile = np.maximum(profile, np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / size**2))
    return profile


def lesion_contrast(image: np.ndarray, center, radius) -> float:
    """MIAS contrast of a lesion: (mean inside r - mean of ring r..1.5r) / std of the ring."""
    # Only the window that holds the ring r..1.5r: a full-image distance map per lesion is slow.
    reach = 1.5 * radius + 1
    r0, c0 = max(int(center[0] - reach), 0), max(int(center[1] - reach), 0)
    r1, c1 = int(center[0] + reach) + 2, int(center[1] + reach) + 2
    window = image[r0:r1, c0:c1]
    rows = np.arange(r0, r0 + window.shape[0])[:, None]
    cols = np.arange(c0, c0 + window.shape[1])[None, :]
    dist = np.sqrt((rows - center[0]) ** 2 + (cols - center[1]) ** 2)
    inside, ring = window[dist <= radius], window[(dist > radius) & (dist <= 1.5 * radius)]
    return float((inside.mean() - ring.mean()) / (ring.std() + 1e-6))


def _place_lesion(rng, image, region, kind, scale, mias_class):
    """Add one lesion to ``image`` in place at the contrast drawn for it; return its record."""
    height, width = image.shape
    # At least 2 px whatever the image size, so the ring r..1.5r always holds pixels.
    if kind == "mass":
        radius = float(np.clip(_two_piece_lognormal(rng, _RADIUS_AT_1024), 10.0, 197.0) * scale)
    else:
        radius = float(np.clip(rng.lognormal(np.log(40.0), 0.5), 8.0, 120.0) * scale)
    radius = max(radius, 2.0)
    # The centre lies inside the breast, with its ring r..1.5r inside too where possible.
    depth_in = distance_transform_edt(region)
    inner = np.argwhere(depth_in >= 1.5 * radius)
    if len(inner) == 0:
        inner = np.argwhere(depth_in >= min(1.5 * radius, depth_in.max()))
    center = inner[int(rng.integers(len(inner)))].astype(np.float64)
    half = int(np.ceil(1.6 * radius)) + 2
    r0, r1 = max(int(center[0]) - half, 0), min(int(center[0]) + half + 1, height)
    c0, c1 = max(int(center[1]) - half, 0), min(int(center[1]) + half + 1, width)
    rows = np.arange(r0, r1, dtype=np.float32)[:, None]
    cols = np.arange(c0, c1, dtype=np.float32)[None, :]
    if kind == "mass":
        profile = _mass_profile(rng, rows, cols, center, radius, MASS_STYLES[mias_class])
    else:
        profile = _calc_cluster(rng, rows, cols, center, radius)
    dist = np.sqrt((rows - center[0]) ** 2 + (cols - center[1]) ** 2)
    inside, ring = dist <= radius, (dist > radius) & (dist <= 1.5 * radius)
    patch = image[r0:r1, c0:c1]
    target = _two_piece_lognormal(rng, _CONTRAST)
    if kind == "calcification":
        target *= 2.0  # calcifications are small and bright: the cluster should be visible
    # Find the amplitude A at which the lesion, once added and clipped, has the target contrast:
    # contrast is nearly affine in A, so a few Newton-like steps on the real patch suffice.
    in_breast = region[r0:r1, c0:c1]
    d_p = max(profile[inside].mean() - profile[ring].mean(), 1e-3)
    amplitude = 0.05
    for _ in range(6):
        trial = np.clip(patch + amplitude * profile * in_breast, 0.0, 1.0)
        ring_std = trial[ring].std() + 1e-6
        achieved = (trial[inside].mean() - trial[ring].mean()) / ring_std
        amplitude = float(np.clip(amplitude + (target - achieved) * ring_std / d_p, 0.01, 0.8))
    image[r0:r1, c0:c1] = np.clip(patch + amplitude * profile * in_breast, 0.0, 1.0)
    mask = np.zeros(image.shape, dtype=bool)
    mask[r0:r1, c0:c1] = inside
    pathology = (
        "malignant" if rng.uniform() < (0.75 if mias_class == "SPIC" else 0.35) else "benign"
    )
    return PhantomLesion(kind, pathology, mias_class, (center[0], center[1]), radius, target, mask)


def synthesize_mammogram(
    rng: np.random.Generator,
    shape: tuple[int, int] = (1024, 1024),
    tissue: str | None = None,
    n_lesions: int | None = None,
    normal_fraction: float = 0.6,
    mirror: bool | None = None,
) -> PhantomImage:
    """Draw one synthetic mammogram.

    Args:
        rng: the random generator (all randomness comes from it).
        shape: (height, width) in pixels; radii scale with the height (MIAS figures at 1024).
        tissue: "F", "G" or "D"; None draws one (MIAS shares: about 1/3 each).
        n_lesions: number of lesions; None draws 0 with probability ``normal_fraction``,
            else 1 (or 2, one time in ten).
        normal_fraction: share of images without lesions when ``n_lesions`` is None.
        mirror: put the chest wall on the right (True) or left (False); None draws it.

    Returns:
        A `PhantomImage` with the pixels (float32 in [0, 1]) and the lesions' truth circles.

    Example:
        >>> ph = synthesize_mammogram(np.random.default_rng(0), (256, 256), n_lesions=1)
        >>> ph.image.shape, len(ph.lesions)
        ((256, 256), 1)
    """
    if tissue is None:
        tissue = str(rng.choice(["F", "G", "D"]))
    if tissue not in ("F", "G", "D"):
        raise ValueError(f"`tissue` must be 'F', 'G' or 'D', received {tissue!r}")
    if not 0.0 <= normal_fraction <= 1.0:
        raise ValueError(f"`normal_fraction` must be in [0, 1], received {normal_fraction}")
    height, width = shape
    region, thickness, geometry = _breast(rng, shape)
    gland_threshold = {"F": 1.0, "G": 0.3, "D": -0.4}[tissue]
    coarse = power_law_noise(rng, shape, beta=3.0)
    fine = power_law_noise(rng, shape, beta=1.8)
    glandular = 1.0 / (1.0 + np.exp(-(coarse - gland_threshold) / 0.35))
    fat = rng.uniform(0.42, 0.55)
    breast = thickness * (fat + 0.28 * glandular + 0.025 * fine)
    if rng.uniform() < 0.8:
        muscle = _pectoral(rng, shape, geometry) & region
        breast = np.where(muscle, np.maximum(breast, thickness * rng.uniform(0.8, 0.92)), breast)
    image = np.where(region, breast, 0.02).astype(np.float32)
    image += 0.008 * rng.standard_normal(shape).astype(np.float32)
    if rng.uniform() < 0.3:  # a film label in the background, as on many digitised films
        lh, lw = int(height * rng.uniform(0.04, 0.08)), int(width * rng.uniform(0.08, 0.15))
        r0 = int(rng.uniform(0.05, 0.9) * (height - lh))
        image[r0 : r0 + lh, width - lw - int(0.03 * width) : width - int(0.03 * width)] = 0.9

    if n_lesions is None:
        n_lesions = 0 if rng.uniform() < normal_fraction else (2 if rng.uniform() < 0.1 else 1)
    lesions = []
    scale = height / 1024.0
    for _ in range(n_lesions):
        mias_class = str(rng.choice(["CIRC", "SPIC", "MISC", "CALC"], p=[0.3, 0.2, 0.2, 0.3]))
        kind = "calcification" if mias_class == "CALC" else "mass"
        lesions.append(_place_lesion(rng, image, region, kind, scale, mias_class))
    if mirror is None:
        mirror = bool(rng.uniform() < 0.5)
    if mirror:
        image = image[:, ::-1]
        region = region[:, ::-1]
        for lesion in lesions:
            lesion.center = (lesion.center[0], width - 1 - lesion.center[1])
            lesion.mask = lesion.mask[:, ::-1]
    return PhantomImage(np.clip(image, 0.0, 1.0), tissue, lesions, region)


DEFAULT_N_IMAGES = 322  # as many as MIAS

_INFO_HEADER = """\
              MAMMOSEG PHANTOM MAMMOGRAMS
    Synthetic images in the layout of the MIAS MiniMammographic Database.

Generated by mammoseg.data.phantom (generator version {version}) with
n_images={n_images} seed={seed} size={size} normal_fraction={normal_fraction}.
Columns as in MIAS: refnum, tissue (F/G/D), class (CIRC SPIC MISC CALC NORM),
severity (B/M), x, y (from the bottom edge), radius in pixels.
Odd and even reference numbers are the two breasts of one synthetic patient.
=================================================================

"""


def generate(
    root: str | os.PathLike,
    n_images: int,
    seed: int = 0,
    size: int | None = None,
    normal_fraction: float = 0.6,
    progress: bool = True,
) -> Path:
    """Write a phantom dataset to ``root`` in the MIAS layout (PGM + Info.txt).

    For the CBIS-DDSM layout, see `mammoseg.data.phantom_cbis.write_cbis_phantom`.

    Deterministic: the same arguments give byte-identical files. Each image is drawn from its
    own generator seeded by (seed, index), so image i does not depend on ``n_images``.

    Args:
        root: folder to write (created; existing files of the same names are replaced).
        n_images: number of mammograms (an even number makes whole patients).
        seed: random seed.
        size: the image side in pixels (None: 1024, as MIAS).
        normal_fraction: share of images without lesions (MIAS: about 0.6).
        progress: show a tqdm progress bar.

    Returns:
        ``root`` as a Path.

    Example:
        >>> root = generate("/tmp/phantom", n_images=4, seed=0, size=256)  # doctest: +SKIP
        >>> sorted(p.name for p in root.iterdir())[:2]
        ['Info.txt', 'mdb001.pgm']
    """
    if not isinstance(n_images, (int, np.integer)) or n_images < 1 or n_images > 999:
        raise ValueError(f"`n_images` must be an integer in [1, 999], received {n_images!r}")
    if size is None:
        size = 1024
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 64:
        raise ValueError(
            f"`size` must be at least 64 pixels for the MIAS layout, received {size!r}"
        )
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for index in tqdm(range(n_images), desc="phantom mammograms", disable=not progress):
        refnum = f"mdb{index + 1:03d}"
        rng = np.random.default_rng([seed, index])
        ph = synthesize_mammogram(
            rng, (size, size), normal_fraction=normal_fraction, mirror=index % 2 == 0
        )
        write_pgm(root / f"{refnum}.pgm", np.round(ph.image * 255).astype(np.uint8))
        if not ph.lesions:
            lines.append(f"{refnum} {ph.tissue} NORM ")
        for lesion in ph.lesions:
            x = int(round(lesion.center[1]))
            y = size - int(round(lesion.center[0]))
            severity = "M" if lesion.pathology == "malignant" else "B"
            radius = max(int(round(lesion.radius)), 1)
            lines.append(f"{refnum} {ph.tissue} {lesion.mias_class} {severity} {x} {y} {radius}")
    header = _INFO_HEADER.format(
        version=GENERATOR_VERSION,
        n_images=n_images,
        seed=seed,
        size=size,
        normal_fraction=normal_fraction,
    )
    info = root / "Info.txt"
    tmp = info.with_name("Info.txt.part")
    tmp.write_bytes((header + "\n".join(lines) + "\n").replace("\n", "\r\n").encode("ascii"))
    os.replace(tmp, info)
    return root


def cache_dir() -> Path:
    """Where built-in data is generated: $MAMMOSEG_CACHE, else ~/.cache/mammoseg."""
    return Path(os.environ.get("MAMMOSEG_CACHE", Path.home() / ".cache" / "mammoseg"))


def load_phantom_records(
    root: str | os.PathLike | None = None,
    n_images: int = DEFAULT_N_IMAGES,
    seed: int = 0,
    size: int = 1024,
    normal_fraction: float = 0.6,
    progress: bool = True,
):
    """Generate the built-in phantom set once (into a cache folder) and load its records.

    Args:
        root: where to keep the images; None: a folder under `cache_dir()` named by the
            generator version and the arguments, so a changed argument never reuses stale files.
        n_images, seed, size, normal_fraction: as for `generate`.
        progress: show a progress bar while generating.

    Returns:
        The records, read back through the MIAS reader (``source="phantom"``).

    Example:
        >>> records = load_phantom_records(n_images=20, size=256)  # doctest: +SKIP
    """
    params = dict(n=n_images, seed=seed, size=size, normal=normal_fraction, v=GENERATOR_VERSION)
    if root is None:
        key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
        root = cache_dir() / f"phantom-{n_images}x{size}-seed{seed}-{key}"
    root = Path(root)
    stamp = root / "phantom.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == params):
        # Build beside the target and rename, so an interrupted build never looks complete.
        tmp = root.with_name(root.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        generate(tmp, n_images, seed, size, normal_fraction=normal_fraction, progress=progress)
        (tmp / "phantom.json").write_text(json.dumps(params, sort_keys=True))
        if root.exists():
            shutil.rmtree(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, root)
    return read_mias(root, source="phantom")
