"""Image sizes, channels and bit depths read from file headers, and full decodes that reject
truncated files: what the dataset checks (:mod:`.check`) read files with.

PNG: the IHDR chunk, read directly. Other formats: PIL's lazy ``Image.open`` (JPEG: the SOF
marker), or a full OpenCV decode for formats PIL cannot identify. Sizes are reported as training
decodes the file: the EXIF orientation of JPEGs is applied as ``cv2.IMREAD_COLOR`` applies it.
"""
from __future__ import annotations

import os.path as osp
import struct
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DatasetError

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# PNG colour type -> channels of the cv2.IMREAD_UNCHANGED decode (palette and gray+alpha -> BGR(A))
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 4, 6: 4}
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = (5, 6, 7, 8)  # orientations cv2.IMREAD_COLOR applies by swapping height and width


class _Header(NamedTuple):
    """What a file's header says: ``(H, W)`` as training decodes it, channels, dtype."""
    shape: tuple[int, int]
    channels: int
    dtype: np.dtype


def read_header(path: str, *, what: str = 'image', orient: bool = False) -> _Header:
    """Size, channels and dtype of an image file from its header, without decoding pixels.

    PNG: the IHDR chunk. Other formats: PIL's lazy ``Image.open`` (JPEG: the SOF marker); formats
    PIL cannot identify are decoded with OpenCV.

    Args:
        path: The file.
        what: 'image', 'label' or 'depth', for the messages.
        orient: Apply the EXIF orientation of JPEGs as ``cv2.IMREAD_COLOR`` (image loading) does.

    Returns:
        ``(shape (H, W), channels, dtype)``; the channels and dtype of a PNG are those of its
        ``cv2.IMREAD_UNCHANGED`` decode.

    Raises:
        DatasetError: missing file or unreadable header (the message names the file).
    """
    try:
        with open(path, 'rb') as f:
            head = f.read(26)
    except FileNotFoundError:
        raise DatasetError(f'{what} file {path} is missing') from None
    if head.startswith(_PNG_SIGNATURE) and head[12:16] == b'IHDR':
        width, height, bits, colour = struct.unpack('>IIBB', head[16:26])
        return _Header((height, width), _PNG_CHANNELS.get(colour, 0),
                       np.dtype(np.uint16 if bits == 16 else np.uint8))
    try:
        with Image.open(path) as im:
            return _Header(_pil_shape(im, orient), len(im.getbands()), _pil_dtype(im.mode))
    except UnidentifiedImageError:
        pass
    except Exception as e:  # noqa: BLE001 - PIL raises many types on broken headers
        raise DatasetError(f'cannot read the header of {what} file {path}: {e}') from None
    array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise DatasetError(f'cannot decode {what} file {path} (corrupt or not an image); '
                           're-copy or replace it')
    return _Header(array.shape[:2], 1 if array.ndim == 2 else array.shape[2], array.dtype)


def decode_image(path: str) -> tuple[int, int]:
    """Decode an image fully (PIL, which rejects truncated files) and return its ``(H, W)``.

    Formats PIL cannot identify are decoded with OpenCV. The EXIF orientation of JPEGs is applied
    to the size as ``cv2.IMREAD_COLOR`` does.

    Raises:
        DatasetError: missing, truncated or corrupt file (the message names it).
    """
    if not osp.isfile(path):
        raise DatasetError(f'image file {path} is missing')
    try:
        with Image.open(path) as im:
            im.load()
            return _pil_shape(im, orient=True)
    except UnidentifiedImageError:
        pass
    except Exception as e:  # noqa: BLE001 - decoders raise many types
        raise DatasetError(f'image file {path} is truncated or corrupt ({e}); re-copy or '
                           'replace it') from None
    array = cv2.imread(path, cv2.IMREAD_COLOR)
    if array is None:
        raise DatasetError(f'cannot decode image file {path} (corrupt or not an image); '
                           're-copy or replace it')
    return array.shape[:2]


def _pil_shape(im: Image.Image, orient: bool) -> tuple[int, int]:
    width, height = im.size
    if orient and im.format == 'JPEG' and 'exif' in im.info:
        if im.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED:
            return width, height
    return height, width


def _pil_dtype(mode: str) -> np.dtype:
    if mode.startswith('I;16'):
        return np.dtype(np.uint16)
    return np.dtype({'I': np.int32, 'F': np.float32}.get(mode, np.uint8))


__all__ = ['decode_image', 'read_header']
