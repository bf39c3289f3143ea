"""Decode and validate image bytes: size and pixel limits, formats, EXIF orientation. Pure functions.

Limits (Rekognition's where it has them):
- `MAX_IMAGE_BYTES` 5 MiB for `Image.Bytes`, `MAX_S3_IMAGE_BYTES` 15 MiB for `Image.S3Object`;
- `MAX_SIDE` 16,384 px and `MAX_PIXELS` 80 megapixels, checked from the header *before* any pixel is decoded,
  so a decompression bomb (a few-KB PNG claiming 50,000 x 50,000) is refused without allocating memory.
  A 10,000 x 8,000 camera image still passes.
Formats: JPEG and PNG (Rekognition's), plus WEBP, BMP and TIFF, which Pillow decodes fully. GIF and other
multi-frame or exotic formats are refused. Alpha is composited onto white; every mode ends as RGB uint8.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from facelens.errors import ImageTooLargeException, InvalidImageFormatException

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_S3_IMAGE_BYTES = 15 * 1024 * 1024
MAX_SIDE = 16_384
MAX_PIXELS = 80_000_000
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never a partly grey image
Image.MAX_IMAGE_PIXELS = None  # our own check runs first, on the header; Pillow's would only warn


@dataclass(frozen=True)
class DecodedImage:
    """Pixels (H, W, 3) RGB uint8, C-contiguous; the source format; the EXIF orientation applied (1 = none)."""

    pixels: np.ndarray
    format: str
    orientation_applied: int = 1

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def check_dimensions(width: int, height: int) -> None:
    """Refuse images whose header claims more pixels than FaceLens decodes."""
    if width <= 0 or height <= 0:
        raise InvalidImageFormatException(f"image header claims an empty {width}x{height} image")
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageTooLargeException(
            f"image is {width}x{height} pixels; the limit is {MAX_SIDE} px a side and "
            f"{MAX_PIXELS // 1_000_000} megapixels"
        )


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max(initial=0) > 255 else 255.0
        gray = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))
    if image.mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float64), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def decode_image(data: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> DecodedImage:
    """Decode image bytes to RGB with EXIF orientation applied, or raise the Rekognition error that fits."""
    if not data:
        raise InvalidImageFormatException("image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageTooLargeException(f"image is {_mib(len(data))}; the limit is {_mib(max_bytes)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # lazy: reads the header only
            if image.format not in FORMATS:
                raise InvalidImageFormatException(
                    f"unsupported image format {image.format}; use JPEG or PNG (also accepted: WEBP, BMP, TIFF)"
                )
            if getattr(image, "n_frames", 1) > 1:
                raise InvalidImageFormatException(f"{image.format} with several frames is not supported")
            check_dimensions(*image.size)
            image_format = image.format
            image.load()
            orientation = int(image.getexif().get(0x0112, 1) or 1)
            if orientation != 1:
                image = ImageOps.exif_transpose(image)
            pixels = _to_rgb(image)
    except (InvalidImageFormatException, ImageTooLargeException):
        raise
    except UnidentifiedImageError:
        raise InvalidImageFormatException("bytes are not a recognised image (expected JPEG or PNG)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeException(f"image refused as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidImageFormatException(f"image data is truncated or corrupt: {detail}") from None
    if orientation != 1:
        check_dimensions(pixels.shape[1], pixels.shape[0])
    return DecodedImage(pixels=pixels, format=image_format, orientation_applied=orientation)
