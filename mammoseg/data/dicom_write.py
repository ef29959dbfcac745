"""DICOM writer: `write_dicom` makes minimal secondary-capture files (phantoms and tests).

The reader is `mammoseg.data.dicom`, which re-exports `write_dicom`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pydicom.uid as uids


def write_dicom(
    path: str | os.PathLike,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    transfer_syntax: str = uids.ExplicitVRLittleEndian,
    **attributes: Any,
) -> Path:
    """Write a 2-D greyscale image as a minimal secondary-capture DICOM (phantoms and tests).

    Args:
        path: the file to write (its folder is created).
        pixels: uint8 or uint16 (rows, columns) stored values.
        photometric: "MONOCHROME2" or "MONOCHROME1".
        bits_stored: significant bits (default: all bits of the dtype).
        transfer_syntax: a transfer syntax UID; compressed ones (RLE, JPEG 2000) need an
            encoder (pydicom's own for RLE, pylibjpeg-openjpeg for JPEG 2000).
        **attributes: further DICOM keywords, e.g. ``PatientID="P_00001"``.

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: ``pixels`` not a 2-D uint8/uint16 array.

    Example:
        >>> write_dicom("x.dcm", np.zeros((64, 64), np.uint16), bits_stored=12)  # doctest: +SKIP
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"`pixels` must be a 2-D uint8 or uint16 array, received {pixels.dtype} {pixels.shape}"
        )
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = uids.SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = attributes.pop("SOPInstanceUID", None) or uids.generate_uid()
    meta.TransferSyntaxUID = uids.ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    bits = bits_stored or pixels.dtype.itemsize * 8
    ds.set_pixel_data(pixels, photometric, bits, generate_instance_uid=False)
    if uids.UID(transfer_syntax).is_compressed:
        ds.compress(transfer_syntax, generate_instance_uid=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
