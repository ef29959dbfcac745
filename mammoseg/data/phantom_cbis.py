"""Phantom mammograms in the CBIS-DDSM layout, so the whole CBIS path runs without the 160 GB.

`write_cbis_phantom` draws synthetic mammograms with `mammoseg.data.phantom` and writes them as
CBIS-DDSM ships them (facts.md §4, data/README.md):

* 16-bit MONOCHROME2 DICOMs of the real scale (long side about 4000 px, portrait, width 50-65 %
  of the height), one folder per full mammogram, ``Mass-Training_P_00001_LEFT_CC``;
* for abnormality *n*, the folder ``<image folder>_<n>`` holding an 8-bit ROI mask (0/255, the
  full image's size; about one in seven is stored at 87 % of it, as some real masks are) and a
  16-bit cropped image, in either order;
* the four case-description CSVs with the real headers (``breast_density`` in the mass files,
  ``breast density`` in the calc files) and the real quirks: the last path column of the mass
  files and the crop column of the calc files end with an embedded newline, and the columns
  naming crop and mask follow the real files' fixed naming, not the files' content.

Each breast view is one mammogram; a view with both a mass and a calcification is listed in
both series (two files), as in CBIS-DDSM. Four consecutive images are the four views of one
patient, about 20 % of patients are in the test sets.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mammoseg.data.cbis_ddsm import CSV_NAMES
from mammoseg.data.dicom import write_dicom
from mammoseg.data.phantom import synthesize_mammogram
from mammoseg.data.resample import resample_mask

DEFAULT_LONG_SIDE = 4000
NAMINGS = ("legacy", "nbia")
_VIEWS = (("LEFT", "CC"), ("LEFT", "MLO"), ("RIGHT", "CC"), ("RIGHT", "MLO"))
_UID_ROOT = "1.3.6.1.4.1.9590.100.1.2."
_COMMON = [
    "patient_id",
    "{density}",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "{a}",
    "{b}",
    "assessment",
    "pathology",
    "subtlety",
    "image file path",
    "cropped image file path",
    "ROI mask file path",
]
HEADERS = {
    "mass": [c.format(density="breast_density", a="mass shape", b="mass margins") for c in _COMMON],
    "calc": [
        c.format(density="breast density", a="calc type", b="calc distribution") for c in _COMMON
    ],
}
_MASS_WORDS = {
    "CIRC": (("OVAL", "ROUND"), ("CIRCUMSCRIBED", "OBSCURED")),
    "SPIC": (("IRREGULAR",), ("SPICULATED", "ILL_DEFINED-SPICULATED")),
    "MISC": (("LOBULATED", "IRREGULAR"), ("ILL_DEFINED", "MICROLOBULATED")),
}
_CALC_WORDS = (("PLEOMORPHIC", "AMORPHOUS", "PUNCTATE"), ("CLUSTERED", "SEGMENTAL", "LINEAR"))
_DENSITY = {"F": ("1", "2"), "G": ("2", "3"), "D": ("3", "4")}


def _uid(rng: np.random.Generator) -> str:
    return _UID_ROOT + str(rng.integers(1, 10)) + "".join(str(d) for d in rng.integers(0, 10, 35))


def _crop(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    margin = int(rng.integers(10, 60) * image.shape[0] / DEFAULT_LONG_SIDE) + 2
    r0, r1 = max(rows.min() - margin, 0), min(rows.max() + margin + 1, image.shape[0])
    c0, c1 = max(cols.min() - margin, 0), min(cols.max() + margin + 1, image.shape[1])
    return image[r0:r1, c0:c1]


def _stored_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """0/255 mask of the image's size, or, one time in seven, of 87 % of it (same aspect)."""
    height, width = mask.shape
    if rng.uniform() < 1 / 7:
        small = (round(height * 0.87), round(width * 0.87))
        if abs((small[0] / small[1]) / (height / width) - 1) < 0.005:
            mask = resample_mask(mask, small)
    return np.where(mask, 255, 0).astype(np.uint8)


def _csv_row(kind, folder, index, lesion, tissue_density, rng, paths):
    side, view = folder.split("_")[-2:]
    patient = "_".join(folder.split("_")[1:3])
    malignant = lesion.pathology == "malignant"
    if kind == "mass":
        shapes, margins = _MASS_WORDS[lesion.mias_class]
        words = [str(rng.choice(shapes)), str(rng.choice(margins))]
    else:
        words = [str(rng.choice(w)) for w in _CALC_WORDS]
    label = "MALIGNANT" if malignant else str(rng.choice(["BENIGN", "BENIGN_WITHOUT_CALLBACK"]))
    assessment = int(rng.choice([4, 5] if malignant else [2, 3, 4]))
    image_path, crop_path, roi_path = paths
    # The real files: the mass CSVs end their last column, the calc CSVs their crop column,
    # with a newline inside the quotes.
    if kind == "mass":
        roi_path += "\n"
    else:
        crop_path += "\n"
    return [
        patient,
        tissue_density,
        side,
        view,
        index,
        "mass" if kind == "mass" else "calcification",
        *words,
        assessment,
        label,
        int(rng.integers(1, 6)),
        image_path,
        crop_path,
        roi_path,
    ]


def _series(rng, naming, description, date):
    """(CSV folders, on-disk folders, file names) of one series in the chosen layout."""
    study, series = _uid(rng), _uid(rng)
    csv_dirs = f"{study}/{series}"
    if naming == "legacy":
        return csv_dirs, csv_dirs, ("000000.dcm", "000001.dcm")
    number = int(rng.integers(10000, 99999))
    disk = f"{date}-DDSM-NA-{number}/1.000000-{description}-{number % 97 + 10000}"
    return csv_dirs, disk, ("1-1.dcm", "1-2.dcm")


def write_cbis_phantom(
    root: str | os.PathLike,
    n_images: int,
    seed: int = 0,
    size: int | None = None,
    naming: str = "legacy",
    progress: bool = True,
) -> Path:
    """Write ``n_images`` synthetic mammograms in the CBIS-DDSM layout under ``root``.

    Deterministic: the same arguments give byte-identical files; image i depends only on
    (seed, i).

    Args:
        root: the folder to write (created). The NBIA naming writes under ``root/CBIS-DDSM``.
        n_images: number of breast views (four per patient).
        seed: random seed.
        size: long side (height) in pixels; None: 4000, the real scale. At least 64.
        naming: "legacy" (the CSV paths exist as written, ``000000.dcm``) or "nbia" (newer
            downloads: descriptive folders, ``1-1.dcm`` / ``1-2.dcm``; the CSV paths keep the
            UID folders, which do not exist on disk).
        progress: show a tqdm progress bar.

    Returns:
        ``root`` as a Path, holding the four CSVs and the image folders.

    Raises:
        ValueError: bad ``n_images``, ``size`` or ``naming``.

    Example:
        >>> root = write_cbis_phantom("/tmp/cbis", n_images=4, size=256)  # doctest: +SKIP
        >>> records = load_records("cbis-ddsm", root)  # doctest: +SKIP
    """
    if not isinstance(n_images, (int, np.integer)) or n_images < 1:
        raise ValueError(f"`n_images` must be a positive integer, received {n_images!r}")
    size = DEFAULT_LONG_SIDE if size is None else size
    if not isinstance(size, (int, np.integer)) or size < 64:
        raise ValueError(f"`size` must be an integer of at least 64 pixels, received {size!r}")
    if naming not in NAMINGS:
        raise ValueError(f"`naming` must be one of {NAMINGS}, received {naming!r}")
    root = Path(root)
    disk_root = root / "CBIS-DDSM" if naming == "nbia" else root
    rows = {name: [] for name in CSV_NAMES}
    for index in tqdm(range(n_images), desc="CBIS phantom", disable=not progress):
        patient_index, view_index = divmod(index, 4)
        side, view = _VIEWS[view_index]
        split = (
            "Test"
            if np.random.default_rng([seed, 10**6 + patient_index]).uniform() < 0.2
            else "Training"
        )
        patient = f"P_{3 * patient_index + 1:05d}"
        rng = np.random.default_rng([seed, index])
        shape = (int(size), int(round(size * rng.uniform(0.5, 0.65))))
        n_lesions = 2 if rng.uniform() < 0.15 else 1
        ph = synthesize_mammogram(rng, shape, n_lesions=n_lesions, mirror=side == "RIGHT")
        pixels = np.round(ph.image * 65535).astype(np.uint16)
        density = str(rng.choice(_DENSITY[ph.tissue]))
        date = f"{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}-2016"
        for kind in ("mass", "calc"):
            lesions = [les for les in ph.lesions if (les.kind == "mass") == (kind == "mass")]
            if not lesions:
                continue
            folder = f"{kind.capitalize()}-{split}_{patient}_{side}_{view}"
            csv_dirs, disk_dirs, names = _series(rng, naming, "full mammogram images", date)
            image_csv = f"{folder}/{csv_dirs}/000000.dcm"
            common = {"PatientID": folder, "BodyPartExamined": "BREAST"}
            write_dicom(
                disk_root / folder / disk_dirs / names[0],
                pixels,
                SOPInstanceUID=_uid(rng),
                SeriesDescription="full mammogram images",
                ImageLaterality=side[0],
                **common,
            )
            for number, lesion in enumerate(lesions, start=1):
                lesion_folder = f"{folder}_{number}"
                csv_dirs, disk_dirs, names = _series(rng, naming, "ROI mask images", date)
                mask = _stored_mask(lesion.mask, rng)
                crop = _crop(pixels, lesion.mask, rng)
                order = names if rng.uniform() < 0.5 else names[::-1]
                for name, data in zip(order, (mask, crop)):
                    write_dicom(
                        disk_root / lesion_folder / disk_dirs / name,
                        data,
                        SOPInstanceUID=_uid(rng),
                        SeriesDescription="ROI mask images",
                        **dict(common, PatientID=lesion_folder),
                    )
                # Real naming: mass CSVs call 000000 the crop, calc CSVs call it the mask.
                first, second = (
                    f"{lesion_folder}/{csv_dirs}/{n}" for n in ("000000.dcm", "000001.dcm")
                )
                paths = (image_csv, first, second) if kind == "mass" else (image_csv, second, first)
                csv_name = (
                    f"{kind}_case_description_{'train' if split == 'Training' else 'test'}_set.csv"
                )
                rows[csv_name].append(_csv_row(kind, folder, number, lesion, density, rng, paths))
    root.mkdir(parents=True, exist_ok=True)
    for name, body in rows.items():
        tmp = root / (name + ".part")
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(HEADERS[name.split("_")[0]])
            writer.writerows(body)
        os.replace(tmp, root / name)
    return root
