"""Decode and validate request images: bytes in, an RGB uint8 array out (pure functions, no model code).

Limits (all checked before any pixel is decoded):

* ``MAX_IMAGE_BYTES`` (5 MiB) is Rekognition's limit for ``Image.Bytes`` (``ImageBlob.max`` in botocore's
  service model); ``MAX_S3_IMAGE_BYTES`` (15 MiB) its documented limit for S3 objects.
* ``MAX_PIXELS`` = 80,000,000 and ``MAX_SIDE`` = 16,384. The pixel budget admits every common camera
  and phone photo (8000x6000 = 48 MP, 50 MP phones at 8160x6144, 61 MP full frame at 9504x6336,
  10000x8000) and caps a decoded RGB frame at 240 MB; 100+ MP medium-format or phone "hi-res" modes
  are refused. It sits below Pillow's own decompression-bomb warning (89.5 MP), so Pillow's check never
  fires for an image we accept. The side limit refuses
  degenerate strips (1 x 60,000,000 fits the budget) and keeps every side well under OpenCV's 32,767
  limit for remap/warpAffine. Dimensions are read from the header (Pillow's plugin opener, without
  decoding) and compared before ``load()``, so a 50,000 x 50,000 PNG of a few KB costs nothing.
* No minimum size: Rekognition's guide says images should be at least 80 px per side but documents no
  error for smaller ones, so a 1x1 image decodes and simply contains no faces.

Formats: JPEG and PNG (Rekognition's) plus WEBP and BMP, which Pillow decodes cleanly. Multi-picture
JPEG (MPO, written by many cameras) is JPEG. Refused: GIF (Rekognition refuses it; a 256-colour palette
is poor input for face analysis), TIFF (large decoder surface, float/multi-page variants), HEIC/AVIF,
JPEG 2000 and everything else. Animated PNG/WEBP: the first frame is used.

Pixels: the EXIF orientation (1..8) is applied with the same mapping as ``ImageOps.exif_transpose``;
unreadable EXIF is ignored (orientation 1) rather than refusing the pixels. Every mode becomes RGB uint8:
16-bit grey is scaled (not clipped) to 8 bits, CMYK/palette/grey are converted, and alpha (including
palette or colour-key transparency) is composited over white, as viewers show it. No colour management:
ICC profiles are ignored and pixels are taken as sRGB. Truncated or corrupt data is an error, never a
partially grey image (``ImageFile.LOAD_TRUNCATED_IMAGES`` is kept False, the CRCs of PNG's critical
chunks, IDAT included, are checked as libpng does, and JPEG is decoded by libjpeg-turbo stopping at its
first warning, after a check that its data can hold the blocks its header claims: ``facelens.jpeg``).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile

from facelens import jpeg
from facelens.errors import FaceLensError, ImageTooLargeException, InvalidImageFormatException

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_IMAGE_BYTES",
    "MAX_PIXELS",
    "MAX_S3_IMAGE_BYTES",
    "MAX_SIDE",
    "REKOGNITION_FORMATS",
    "SUPPORTED_FORMATS",
    "DecodedImage",
    "check_dimensions",
    "decode_image",
    "sniff_format",
]

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_S3_IMAGE_BYTES = 15 * 1024 * 1024
MAX_PIXELS = 80_000_000
MAX_SIDE = 16_384

REKOGNITION_FORMATS: tuple[str, ...] = ("JPEG", "PNG")
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})  # file names of SUPPORTED_FORMATS

# Strict decoding is Pillow's default; state it so that a truncated file can never pass as grey pixels.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_MAX_REASON = 200

# (offset, magic, format name): enough to route the allowed formats and to name the common refused ones.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"BM", "BMP"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"II+\x00", "TIFF"),
    (0, b"MM\x00+", "TIFF"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"),
    (0, b"\xff\x4f\xff\x51", "JPEG2000"),
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"8BPS", "PSD"),
    (0, b"%PDF", "PDF"),
    (0, b"qoif", "QOI"),
    (0, b"\xff\x0a", "JPEGXL"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEGXL"),
)
_FTYP_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF"}
# A base64-encoded JPEG or PNG: the protocol layer should have decoded it (common client mistake).
_BASE64_PREFIXES = (b"/9j/", b"iVBORw0KGgo")
_ALPHA_MODES = frozenset({"RGBA", "LA"})
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class DecodedImage:
    """A decoded, upright image: ``pixels`` is (H, W, 3) uint8 RGB, C-contiguous and read-only."""

    pixels: np.ndarray
    format: str
    orientation_applied: int = 1

    @property
    def width(self) -> int:
        """Width in pixels, after the EXIF orientation was applied."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels, after the EXIF orientation was applied."""
        return int(self.pixels.shape[0])


def sniff_format(data: bytes) -> str | None:
    """Name the image format from its magic bytes (e.g. "JPEG", "GIF", "HEIC"), or None if unknown."""
    head = bytes(data[:32])
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "ISO-BMFF")
    return None


def check_dimensions(width: int, height: int) -> None:
    """Refuse a width x height that is empty or over the ``MAX_PIXELS``/``MAX_SIDE`` budget."""
    if width <= 0 or height <= 0:
        raise InvalidImageFormatException(f"Image header declares an empty {width}x{height} image.")
    if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
        raise ImageTooLargeException(
            f"Image is {width}x{height} pixels ({width * height:,}); the limit is {MAX_PIXELS:,} pixels "
            f"and {MAX_SIDE:,} pixels per side."
        )


def decode_image(
    data: bytes, max_bytes: int = MAX_IMAGE_BYTES, formats: Collection[str] = SUPPORTED_FORMATS
) -> DecodedImage:
    """Decode image bytes into an upright RGB uint8 image, enforcing the byte, format and pixel limits.

    Raises ``InvalidImageFormatException`` for empty, truncated, corrupt, unrecognised or unsupported
    data, and ``ImageTooLargeException`` above ``max_bytes`` or the ``MAX_PIXELS``/``MAX_SIDE`` budget.
    ``formats`` narrows the accepted formats (e.g. ``REKOGNITION_FORMATS``); it must be a subset of
    ``SUPPORTED_FORMATS``.
    """
    unknown = set(formats) - set(SUPPORTED_FORMATS)
    if unknown:
        raise ValueError(f"unsupported entries in formats: {sorted(unknown)}")
    size = len(data)
    if size == 0:
        raise InvalidImageFormatException("Image bytes are empty.")
    if size > max_bytes:
        raise ImageTooLargeException(f"Image is {size:,} bytes; the limit is {max_bytes:,} bytes.")
    fmt = _check_format(data, formats)
    try:
        return _decode(bytes(data), fmt)
    except FaceLensError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeException(f"Image is over the pixel limit: {_reason(exc)}") from exc
    except MemoryError:
        raise
    except Exception as exc:  # any Pillow/codec failure means the bytes are not a valid image
        raise InvalidImageFormatException(f"Could not decode the {fmt} image: {_reason(exc)}") from exc


def _check_format(data: bytes, formats: Collection[str]) -> str:
    """Return the sniffed format if it is allowed, else raise with a message naming what was found."""
    allowed = ", ".join(f for f in SUPPORTED_FORMATS if f in formats)
    fmt = sniff_format(data)
    if fmt is None:
        if bytes(data[:16]).startswith(_BASE64_PREFIXES):
            raise InvalidImageFormatException(
                "Image bytes look base64-encoded; send the raw image bytes (base64 only on the wire)."
            )
        raise InvalidImageFormatException(
            f"Image bytes are not a recognised image format (starts with 0x{bytes(data[:8]).hex()}; "
            f"supported: {allowed})."
        )
    if fmt not in formats:
        raise InvalidImageFormatException(f"{fmt} images are not supported (supported: {allowed}).")
    return fmt


def _decode(data: bytes, fmt: str) -> DecodedImage:
    """Open the header, check the pixel budget, then decode, orient and convert to RGB."""
    if fmt == "PNG":
        _check_png_crcs(data)
    im = _open_header(data, fmt)
    check_dimensions(*im.size)
    if fmt == "JPEG":  # EXIF is in the header; the pixels come from the strict decoder (`facelens.jpeg`)
        jpeg.check_cost(data)
        orientation = _orientation(im)
        im = _load_jpeg(im, data)
    else:
        im.load()
        orientation = _orientation(im)
    if orientation in _TRANSPOSE:
        im = im.transpose(_TRANSPOSE[orientation])
    else:
        orientation = 1
    pixels = np.ascontiguousarray(_to_rgb(im), dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise InvalidImageFormatException(f"{fmt} image decoded to an unexpected shape {pixels.shape}.")
    pixels.flags.writeable = False
    return DecodedImage(pixels=pixels, format=fmt, orientation_applied=orientation)


def _load_jpeg(im: ImageFile.ImageFile, data: bytes) -> Image.Image:
    """The JPEG's pixels decoded strictly; CMYK (Adobe inversion is Pillow's) is checked strictly, then loaded."""
    if im.mode == "CMYK":
        jpeg.decode_strict(data, im.mode)
        im.load()
        return im
    return Image.fromarray(jpeg.decode_strict(data, im.mode))


def _open_header(data: bytes, fmt: str) -> ImageFile.ImageFile:
    """Parse only the header with the format's own Pillow plugin.

    ``Image.open`` would run Pillow's decompression-bomb check before we see the size; calling the
    plugin directly leaves the decision to our budget (the plugin reads headers, not pixels).
    """
    if fmt not in Image.OPEN:
        Image.init()
    factory = Image.OPEN[fmt][0]
    im = factory(io.BytesIO(data), "")
    if not isinstance(im, ImageFile.ImageFile):
        raise InvalidImageFormatException(f"Could not read the {fmt} header.")
    return im


def _check_png_crcs(data: bytes) -> None:
    """Verify the CRC of every critical chunk (IHDR, PLTE, IDAT, IEND), as libpng does; Pillow skips IDAT's.

    Ancillary chunks are left to Pillow; a chunk cut short is left to the decoder's truncation error.
    """
    pos = 8
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            return
        if kind[:1].isupper() and zlib.crc32(data[pos + 4 : end]) != struct.unpack(">I", data[end : end + 4])[0]:
            name = kind.decode("latin-1")
            raise InvalidImageFormatException(f"Could not decode the PNG image: chunk {name!r} has a bad CRC.")
        if kind == b"IEND":
            return
        pos = end + 4


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1 when absent, out of range or unreadable)."""
    try:
        value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # malformed EXIF: keep the pixels, ignore the metadata
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8: 16-bit scaled, alpha composited over white."""
    if im.mode.startswith("I;16") or im.mode == "I":
        wide = np.clip(np.asarray(im).astype(np.int64), 0, 65535)
        grey = ((wide + 128) // 257).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if im.mode not in _ALPHA_MODES and (im.mode in {"PA", "RGBa", "La"} or "transparency" in im.info):
        im = im.convert("RGBA")
    if im.mode in _ALPHA_MODES:
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im, mask=im.getchannel("A"))
        im = background
    elif im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


def _reason(exc: BaseException) -> str:
    """One short line describing a decoder exception."""
    if isinstance(exc.__cause__ or exc, (struct.error, EOFError, IndexError)):  # Pillow re-raises as SyntaxError
        return "the data ends early or is malformed (truncated file?)"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."
