"""Image input: every malformed class gets its Rekognition error; valid variants decode to RGB uint8.

Every input is built here (no data files): `png_claiming` is also used by test_analysis.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from facelens.errors import ImageTooLargeException, InvalidImageFormatException
from facelens.imaging import (
    MAX_IMAGE_BYTES,
    MAX_PIXELS,
    MAX_S3_IMAGE_BYTES,
    MAX_SIDE,
    REKOGNITION_FORMATS,
    DecodedImage,
    check_dimensions,
    decode_image,
    sniff_format,
)

# --- builders ---------------------------------------------------------------------------------------------


def encode(pixels: np.ndarray | Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_raw(width: int, height: int, depth: int, colour: int, rows: bytes) -> bytes:
    """A PNG from raw filtered scanlines (for bit depths and layouts Pillow does not write)."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows))
            + png_chunk(b"IEND", b""))


def png_claiming(width: int, height: int) -> bytes:
    """A few-hundred-byte PNG whose header claims width x height RGB pixels (a decompression bomb)."""
    compressor = zlib.compressobj(9)
    stream = compressor.compress(b"\0" * (1 + 3 * 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", stream) + png_chunk(b"IEND", b"")


def png_bomb(side: int) -> bytes:
    """A complete, valid side x side 1-bit PNG of zeros, compressed incrementally (never held raw)."""
    row = bytes(1 + (side + 7) // 8)
    compressor = zlib.compressobj(1)
    block, rows_per_block = row * 200, 200
    parts = [compressor.compress(block) for _ in range(side // rows_per_block)]
    parts += [compressor.compress(row * (side % rows_per_block)), compressor.flush()]
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"".join(parts))
            + png_chunk(b"IEND", b""))


def png_chunk_span(data: bytes, kind: bytes) -> tuple[int, int]:
    """(start of the chunk's data, its length) for the first chunk of that kind."""
    start = data.index(kind) + 4
    (length,) = struct.unpack(">I", data[start - 8 : start - 4])
    return start, length


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the SOF0 frame header's dimensions (a JPEG bomb needs no more)."""
    patched = bytearray(data)
    sof = patched.index(b"\xff\xc0")
    patched[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(patched)


def exif_with(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """120 x 160 with a red top-left quadrant on a dark, slightly noisy background."""
    rng = np.random.default_rng(1)
    base = np.zeros((120, 160, 3), dtype=np.uint8)
    base[:60, :80] = (255, 0, 0)
    return np.clip(base.astype(int) + rng.integers(0, 20, base.shape), 0, 255).astype(np.uint8)


def assert_error(data: bytes, kind: type[Exception], *words: str, **options: object) -> str:
    """decode_image raises exactly `kind` with a one-line message containing every word."""
    with pytest.raises(kind) as info:
        decode_image(data, **options)  # type: ignore[arg-type]
    assert type(info.value) is kind
    message = str(info.value)
    assert "\n" not in message and 10 < len(message) < 300, message
    for word in words:
        assert word in message, message
    return message


# --- limits -----------------------------------------------------------------------------------------------


def test_byte_limits_follow_rekognition() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("rekognition")
    assert model.shape_for("ImageBlob").metadata["max"] == MAX_IMAGE_BYTES == 5 * 1024 * 1024
    assert MAX_S3_IMAGE_BYTES == 15 * 1024 * 1024
    assert MAX_PIXELS <= Image.MAX_IMAGE_PIXELS  # Pillow's bomb warning can never fire for an accepted image


def test_camera_resolutions_pass_the_pixel_budget() -> None:
    for width, height in [(8000, 6000), (6000, 8000), (8160, 6144), (9504, 6336), (10_000, 8_000), (1, 1)]:
        check_dimensions(width, height)
    for width, height in [(20_000, 100), (100, 20_000), (10_000, 8_001), (50_000, 50_000)]:
        with pytest.raises(ImageTooLargeException):
            check_dimensions(width, height)
    with pytest.raises(InvalidImageFormatException):
        check_dimensions(0, 10)


# --- malformed input --------------------------------------------------------------------------------------


def test_empty_bytes() -> None:
    assert_error(b"", InvalidImageFormatException, "empty")


@pytest.mark.parametrize(
    "data",
    [b"hello, this is text", np.random.default_rng(2).bytes(4096), bytes(1000), b"<svg xmlns='x'></svg>"],
    ids=["text", "random", "zeros", "svg"],
)
def test_non_image_bytes(data: bytes) -> None:
    assert_error(data, InvalidImageFormatException, "not a recognised image format", "supported: JPEG, PNG")


def test_base64_text_is_named(photo: np.ndarray) -> None:
    import base64

    assert_error(base64.b64encode(encode(photo)), InvalidImageFormatException, "base64")
    assert_error(base64.b64encode(encode(photo, "PNG")), InvalidImageFormatException, "base64")


@pytest.mark.parametrize(("fmt", "options"), [("GIF", {}), ("TIFF", {}), ("ICO", {}), ("PDF", {})])
def test_unsupported_formats_are_named(photo: np.ndarray, fmt: str, options: dict) -> None:
    assert sniff_format(encode(photo, fmt, **options)) == fmt
    assert_error(encode(photo, fmt, **options), InvalidImageFormatException,
                 f"{fmt} images are not supported", "JPEG, PNG, WEBP, BMP")


def test_animated_gif_is_refused(photo: np.ndarray) -> None:
    frames = [Image.fromarray(photo), Image.fromarray(photo[::-1].copy())]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert_error(data, InvalidImageFormatException, "GIF images are not supported")


def test_heic_signature_is_named() -> None:
    data = struct.pack(">I", 24) + b"ftypheic" + b"\0" * 40
    assert_error(data, InvalidImageFormatException, "HEIC images are not supported")


def test_rekognition_only_formats(photo: np.ndarray) -> None:
    assert decode_image(encode(photo, "PNG"), formats=REKOGNITION_FORMATS).format == "PNG"
    assert_error(encode(photo, "WEBP"), InvalidImageFormatException, "WEBP images are not supported",
                 "(supported: JPEG, PNG)", formats=REKOGNITION_FORMATS)
    with pytest.raises(ValueError):
        decode_image(encode(photo), formats=("JPEG", "GIF"))


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg(photo: np.ndarray, progressive: bool) -> None:
    data = encode(photo, progressive=progressive)
    assert_error(data[: len(data) // 2], InvalidImageFormatException, "Could not decode the JPEG image", "truncated")


def test_header_only_jpeg(photo: np.ndarray) -> None:
    data = encode(photo)
    sos = data.index(b"\xff\xda")
    (length,) = struct.unpack(">H", data[sos + 2 : sos + 4])
    assert_error(data[: sos + 2 + length], InvalidImageFormatException, "Could not decode the JPEG image")
    assert_error(data[:sos], InvalidImageFormatException, "JPEG")  # tables and frame header, no scan
    assert_error(data[:3], InvalidImageFormatException, "JPEG")  # the signature alone


def test_truncated_png(photo: np.ndarray) -> None:
    data = encode(photo, "PNG")
    assert_error(data[: len(data) // 2], InvalidImageFormatException, "Could not decode the PNG image")
    assert_error(data[:40], InvalidImageFormatException, "PNG")  # IHDR and nothing else


def test_png_with_bad_idat_crc(photo: np.ndarray) -> None:
    data = bytearray(encode(photo, "PNG"))
    start, length = png_chunk_span(bytes(data), b"IDAT")
    data[start + length] ^= 0xFF
    assert_error(bytes(data), InvalidImageFormatException, "Could not decode the PNG image")


def test_png_with_corrupt_zlib_stream_and_valid_crc(photo: np.ndarray) -> None:
    data = encode(photo, "PNG")
    start, length = png_chunk_span(data, b"IDAT")
    stream = bytearray(data[start : start + length])
    stream[10:40] = b"\xff" * 30
    rebuilt = data[: start - 8] + png_chunk(b"IDAT", bytes(stream)) + data[start + length + 4 :]
    assert_error(rebuilt, InvalidImageFormatException, "Could not decode the PNG image")


def test_png_with_bad_ihdr_crc(photo: np.ndarray) -> None:
    data = bytearray(encode(photo, "PNG"))
    data[29] ^= 0xFF  # last byte of IHDR's CRC
    assert_error(bytes(data), InvalidImageFormatException, "Could not decode the PNG image")


# --- size limits ------------------------------------------------------------------------------------------


def test_six_megabyte_png_is_too_large_for_bytes_but_fits_s3() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (1400, 1500, 3), dtype=np.uint8)
    data = encode(noise, "PNG", compress_level=0)
    assert 6_000_000 < len(data) < MAX_S3_IMAGE_BYTES
    assert_error(data, ImageTooLargeException, f"{len(data):,} bytes", "5,242,880")
    assert decode_image(data, max_bytes=MAX_S3_IMAGE_BYTES).pixels.shape == (1400, 1500, 3)


def test_byte_limit_is_inclusive(photo: np.ndarray) -> None:
    data = encode(photo, "PNG")
    assert decode_image(data, max_bytes=len(data)).width == 160
    assert_error(data, ImageTooLargeException, "limit", max_bytes=len(data) - 1)


def test_bomb_header_is_refused_before_decoding() -> None:
    bomb = png_claiming(50_000, 50_000)
    assert len(bomb) < 1000
    assert_error(bomb, ImageTooLargeException, "50000x50000", "80,000,000")


def test_over_long_side_is_refused() -> None:
    assert_error(png_claiming(MAX_SIDE + 1, 10), ImageTooLargeException, f"{MAX_SIDE + 1}x10", "per side")


def test_jpeg_bomb_is_refused(photo: np.ndarray) -> None:
    assert_error(jpeg_with_size(encode(photo), 60_000, 60_000), ImageTooLargeException, "60000x60000")


def test_webp_bomb_is_refused(photo: np.ndarray) -> None:
    frames = [Image.fromarray(photo), Image.fromarray(photo[::-1].copy())]
    data = bytearray(encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True))
    vp8x = data.index(b"VP8X") + 8
    data[vp8x + 4 : vp8x + 10] = (16_382).to_bytes(3, "little") * 2  # canvas 16383 x 16383
    assert_error(bytes(data), ImageTooLargeException, "16383x16383")


def test_valid_png_bomb_is_refused_fast_without_allocating(tmp_path: Path) -> None:
    """A complete 50,000 x 50,000 PNG (7.5 GB as RGB) is refused in < 2 s, growing memory by < 200 MB."""
    bomb = png_bomb(50_000)
    assert len(bomb) < 2 * 1024 * 1024
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    code = (
        "import json, resource, sys, time\n"
        "from facelens.imaging import decode_image\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    decode_image(data)\n"
        "    outcome = 'decoded'\n"
        "except Exception as exc:\n"
        "    outcome = type(exc).__name__ + ': ' + str(exc)\n"
        "seconds = time.perf_counter() - start\n"
        "print(json.dumps([outcome, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                            timeout=120, check=True)
    # growth of the high-water mark across the call: ru_maxrss survives fork+exec, so an absolute value
    # would include the memory of the pytest process that started this one
    outcome, seconds, grown_kib = json.loads(result.stdout)
    assert outcome.startswith("ImageTooLargeException: Image is 50000x50000 pixels")
    assert seconds < 2.0
    assert grown_kib < 200 * 1024  # far below the 7.5 GB the pixels would take


# --- orientation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("orientation", "corner"), [(6, "top-right"), (8, "bottom-left"), (3, "bottom-right")])
def test_exif_orientation_moves_the_red_corner(photo: np.ndarray, orientation: int, corner: str) -> None:
    decoded = decode_image(encode(photo, "JPEG", exif=exif_with(orientation), quality=95))
    assert decoded.orientation_applied == orientation
    if orientation in (6, 8):
        assert (decoded.height, decoded.width) == (160, 120)  # a quarter turn
    pixels = decoded.pixels
    h, w = pixels.shape[:2]
    quadrant = {
        "top-right": pixels[: h // 2, w // 2 :],
        "bottom-left": pixels[h // 2 :, : w // 2],
        "bottom-right": pixels[h // 2 :, w // 2 :],
    }[corner]
    assert quadrant[..., 0].mean() > 200 and quadrant[..., 1].mean() < 60


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(photo: np.ndarray, orientation: int) -> None:
    data = encode(photo, "JPEG", exif=exif_with(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    decoded = decode_image(data)
    assert decoded.orientation_applied == orientation
    assert np.array_equal(decoded.pixels, expected)


def test_orientation_in_png_exif_is_applied(photo: np.ndarray) -> None:
    decoded = decode_image(encode(photo, "PNG", exif=exif_with(6)))
    assert decoded.orientation_applied == 6
    assert np.array_equal(decoded.pixels, np.rot90(photo, k=-1))


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_invalid_orientation_is_ignored(photo: np.ndarray, orientation: int) -> None:
    decoded = decode_image(encode(photo, "PNG", exif=exif_with(orientation)))
    assert decoded.orientation_applied == 1
    assert np.array_equal(decoded.pixels, photo)


# --- modes and formats ------------------------------------------------------------------------------------


def assert_rgb(decoded: DecodedImage, height: int, width: int) -> None:
    pixels = decoded.pixels
    assert pixels.dtype == np.uint8 and pixels.shape == (height, width, 3)
    assert pixels.flags["C_CONTIGUOUS"] and not pixels.flags["WRITEABLE"]
    assert (decoded.height, decoded.width) == (height, width)


@pytest.mark.parametrize(("mode", "fmt"), [
    ("L", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("1", "PNG"), ("CMYK", "JPEG"),
    ("L", "JPEG"), ("RGBA", "WEBP"), ("RGB", "BMP"), ("P", "BMP"), ("RGBA", "BMP"),
])
def test_every_mode_becomes_rgb_uint8(photo: np.ndarray, mode: str, fmt: str) -> None:
    decoded = decode_image(encode(Image.fromarray(photo).convert(mode), fmt))
    assert decoded.format == fmt
    assert_rgb(decoded, 120, 160)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    values = np.array([[0, 256, 1000, 32768, 65535]], dtype=">u2")
    data = png_raw(5, 1, 16, 0, b"\0" + values.tobytes())
    decoded = decode_image(data)
    assert_rgb(decoded, 1, 5)
    assert decoded.pixels[0, :, 0].tolist() == [0, 1, 4, 128, 255]
    assert (decoded.pixels[..., 0] == decoded.pixels[..., 2]).all()


def test_sixteen_bit_rgb_and_rgba() -> None:
    rgb = np.array([[[65535, 32768, 0]]], dtype=">u2")
    assert decode_image(png_raw(1, 1, 16, 2, b"\0" + rgb.tobytes())).pixels[0, 0].tolist() == [255, 128, 0]
    rgba = np.array([[[0, 0, 0, 0]]], dtype=">u2")
    assert decode_image(png_raw(1, 1, 16, 6, b"\0" + rgba.tobytes())).pixels[0, 0].tolist() == [255] * 3


def test_alpha_is_composited_over_white() -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[:2] = (255, 0, 0, 128)  # half-transparent red
    pixels = decode_image(encode(rgba, "PNG")).pixels
    assert (pixels[2:] == 255).all()  # fully transparent black -> white, not black
    assert np.abs(pixels[0, 0].astype(int) - (255, 127, 127)).max() <= 1


def test_palette_transparency_is_composited_over_white() -> None:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((0, 0), 1)
    pixels = decode_image(encode(image, "PNG", transparency=0)).pixels
    assert pixels[0, 0].tolist() == [0, 255, 0] and pixels[3, 3].tolist() == [255, 255, 255]


@pytest.mark.parametrize("options", [{"lossless": True}, {"quality": 90}])
def test_webp_is_accepted(photo: np.ndarray, options: dict) -> None:
    decoded = decode_image(encode(photo, "WEBP", **options))
    assert decoded.format == "WEBP"
    assert_rgb(decoded, 120, 160)
    if options.get("lossless"):
        assert np.array_equal(decoded.pixels, photo)


def test_multi_picture_jpeg_is_jpeg(photo: np.ndarray) -> None:
    frames = [Image.fromarray(photo), Image.fromarray(photo[::-1].copy())]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    decoded = decode_image(data)
    assert decoded.format == "JPEG" and decoded.pixels[:60, :80, 0].mean() > 200


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_images_use_the_first_frame(photo: np.ndarray, fmt: str) -> None:
    frames = [Image.fromarray(photo), Image.fromarray(photo[::-1].copy())]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], lossless=True)
    assert np.array_equal(decode_image(data).pixels, photo)


def test_tiny_image_decodes() -> None:
    decoded = decode_image(encode(np.full((1, 1, 3), 7, np.uint8), "PNG"))
    assert_rgb(decoded, 1, 1)
    assert decoded.pixels.tolist() == [[[7, 7, 7]]] and decoded.orientation_applied == 1


# --- fuzz: only the two Rekognition errors ever escape ----------------------------------------------------


@pytest.fixture(scope="module")
def valid_images(photo: np.ndarray) -> list[bytes]:
    small = photo[::4, ::4].copy()
    return [encode(small, "JPEG"), encode(small, "PNG"), encode(small, "WEBP"), encode(small, "BMP"),
            encode(small, "JPEG", progressive=True, exif=exif_with(6))]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 4), cut=st.floats(0, 1), edits=st.lists(st.tuples(st.floats(0, 1),
       st.integers(0, 255)), max_size=6))
def test_mutated_images_raise_only_rekognition_errors(valid_images: list[bytes], which: int, cut: float,
                                                      edits: list[tuple[float, int]]) -> None:
    data = bytearray(valid_images[which])
    for where, value in edits:
        data[int(where * (len(data) - 1))] = value
    data = data[: max(1, int(cut * len(data)) + 1)]
    try:
        decoded = decode_image(bytes(data))
    except (InvalidImageFormatException, ImageTooLargeException) as exc:
        assert "\n" not in str(exc)
    else:
        assert decoded.pixels.dtype == np.uint8 and decoded.pixels.shape[2] == 3
