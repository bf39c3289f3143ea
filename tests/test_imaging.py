"""Image input: every malformed class gets its Rekognition error; valid variants decode to RGB uint8."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from facelens.errors import ImageTooLargeException, InvalidImageFormatException
from facelens.imaging import MAX_IMAGE_BYTES, decode_image


def encode(pixels: np.ndarray | Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int) -> bytes:
    """A few-hundred-byte PNG whose header claims width x height RGB pixels (a decompression bomb)."""
    compressor = zlib.compressobj(9)
    stream = compressor.compress(b"\0" * (1 + 3 * 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", stream) + png_chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    rng = np.random.default_rng(1)
    base = np.zeros((120, 160, 3), dtype=np.uint8)
    base[:60, :80] = (255, 0, 0)  # red top-left quadrant
    return np.clip(base.astype(int) + rng.integers(0, 20, base.shape), 0, 255).astype(np.uint8)


def assert_error(data: bytes, kind: type[Exception], words: str) -> None:
    with pytest.raises(kind) as info:
        decode_image(data)
    message = str(info.value)
    assert "\n" not in message and words in message


def test_empty_bytes() -> None:
    assert_error(b"", InvalidImageFormatException, "empty")


@pytest.mark.parametrize("data", [b"hello, this is text", bytes(range(256)) * 10, b"%PDF-1.4\n" + b"0" * 100])
def test_non_image_bytes(data: bytes) -> None:
    assert_error(data, InvalidImageFormatException, "not a recognised image")


def test_truncated_jpeg(photo: np.ndarray) -> None:
    data = encode(photo)
    assert_error(data[: len(data) // 2], InvalidImageFormatException, "truncated")


def test_header_only_jpeg(photo: np.ndarray) -> None:
    assert_error(encode(photo)[:200], InvalidImageFormatException, "truncated or corrupt")


def test_truncated_png(photo: np.ndarray) -> None:
    data = encode(photo, "PNG")
    assert_error(data[: len(data) // 2], InvalidImageFormatException, "truncated or corrupt")


def test_png_with_corrupt_compressed_stream(photo: np.ndarray) -> None:
    data = bytearray(encode(photo, "PNG"))
    start = data.index(b"IDAT") + 4
    data[start + 10 : start + 40] = b"\xff" * 30
    assert_error(bytes(data), InvalidImageFormatException, "truncated or corrupt")


def test_bytes_over_the_limit_are_refused_before_decoding() -> None:
    assert_error(b"\xff\xd8" + b"\0" * (MAX_IMAGE_BYTES + 1), ImageTooLargeException, "limit is 5.0 MiB")


def test_six_megabyte_real_png_is_too_large() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (1500, 1500, 3), dtype=np.uint8)
    data = encode(noise, "PNG")
    assert len(data) > 6_000_000
    assert_error(data, ImageTooLargeException, "MiB")


def test_decompression_bomb_refused_from_header_without_allocating() -> None:
    bomb = png_claiming(50_000, 50_000)
    assert len(bomb) < 1000
    code = (
        "import resource, time, sys\n"
        "from facelens.imaging import decode_image\n"
        "from facelens.errors import ImageTooLargeException\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "start = time.perf_counter()\n"
        "try:\n    decode_image(data)\nexcept ImageTooLargeException as exc:\n    print('refused', exc)\n"
        "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".png") as handle:
        handle.write(bomb)
        handle.flush()
        result = subprocess.run([sys.executable, "-c", code, handle.name], capture_output=True, text=True,
                                timeout=60, check=True)
    refused, numbers = result.stdout.strip().splitlines()
    assert refused.startswith("refused image is 50000x50000 pixels")
    seconds, grown_kib = numbers.split()
    assert float(seconds) < 2.0
    assert int(grown_kib) < 200_000  # far below the 7.5 GB the pixels would take


def test_large_camera_resolution_passes_the_pixel_budget() -> None:
    from facelens.imaging import check_dimensions

    check_dimensions(10_000, 8_000)
    with pytest.raises(ImageTooLargeException):
        check_dimensions(20_000, 100)


@pytest.mark.parametrize(("orientation", "corner"), [(6, "top-right"), (8, "bottom-left"), (3, "bottom-right")])
def test_exif_orientation_is_applied(photo: np.ndarray, orientation: int, corner: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_image(encode(photo, "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.orientation_applied == orientation
    pixels = decoded.pixels
    if orientation in (6, 8):
        assert pixels.shape[:2] == (160, 120)  # rotated a quarter turn
    h, w = pixels.shape[:2]
    quadrants = {
        "top-right": pixels[: h // 2, w // 2 :], "bottom-left": pixels[h // 2 :, : w // 2],
        "bottom-right": pixels[h // 2 :, w // 2 :],
    }
    red = quadrants[corner]
    assert red[..., 0].mean() > 200 and red[..., 1].mean() < 60


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA", "CMYK"])
def test_every_mode_becomes_rgb_uint8(photo: np.ndarray, mode: str) -> None:
    image = Image.fromarray(photo)
    converted = Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 256) if mode == "I;16" \
        else image.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG" if mode != "I;16" else "TIFF"
    decoded = decode_image(encode(converted, fmt))
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.shape == (120, 160, 3)
    assert decoded.pixels.flags["C_CONTIGUOUS"]


def test_transparent_pixels_become_white() -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    decoded = decode_image(encode(rgba, "PNG"))
    assert (decoded.pixels == 255).all()


def test_webp_is_accepted_and_gif_is_refused(photo: np.ndarray) -> None:
    assert decode_image(encode(photo, "WEBP")).format == "WEBP"
    assert_error(encode(photo, "GIF"), InvalidImageFormatException, "unsupported image format GIF")


def test_tiny_image_decodes() -> None:
    assert decode_image(encode(np.zeros((1, 1, 3), np.uint8), "PNG")).pixels.shape == (1, 1, 3)
