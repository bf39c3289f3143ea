"""JPEG decoding (`facelens.jpeg` through `facelens.imaging.decode_image`): real JPEGs decode to Pillow's pixels;
truncated data, forged headers and unsupported processes are refused before or instead of being decoded."""

from __future__ import annotations

import io
import struct
import time

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from facelens.errors import InvalidImageFormatException
from facelens.imaging import decode_image
from tests.conftest import encode


@pytest.fixture(scope="module")
def odd(astronaut: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(astronaut[:333, :217])  # sizes that are not multiples of an MCU


def pillow(data: bytes) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))


def with_orientation(data: bytes, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    im = Image.open(io.BytesIO(data))
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def cmyk(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("CMYK").save(buffer, "JPEG")
    return buffer.getvalue()


def bomb(width: int = 10000, height: int = 8000) -> bytes:
    small = encode(np.full((8, 8, 3), 128, np.uint8), quality=50)
    sof = small.index(b"\xff\xc0")
    return small[: sof + 5] + struct.pack(">HH", height, width) + small[sof + 9:]


def test_real_jpegs_decode_to_pillows_pixels(odd: np.ndarray, astronaut: np.ndarray) -> None:
    cases = {
        "4:2:0": encode(odd), "4:2:2": encode(odd, subsampling=1), "4:4:4": encode(odd, subsampling=0),
        "progressive": encode(odd, progressive=True), "optimized": encode(odd, optimize=True),
        "grey": encode(odd[:, :, 0]), "grey progressive": encode(odd[:, :, 0], progressive=True),
        "restart markers": encode(odd, restart_marker_blocks=3),
        "opencv restart": cv2.imencode(".jpg", odd[:, :, ::-1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 4])[1].tobytes(),
        "opencv progressive": cv2.imencode(".jpg", odd[:, :, ::-1], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
        "CMYK": cmyk(odd),
        "512 px q95": encode(astronaut, quality=95),
    }
    for orientation in (3, 6, 8):
        cases[f"EXIF orientation {orientation}"] = with_orientation(encode(odd), orientation)
    assert b"\xff\xdd" in cases["restart markers"] and b"\xff\xdd" in cases["opencv restart"]
    for name, data in cases.items():
        decoded = decode_image(data)
        assert np.array_equal(decoded.pixels, pillow(data)), name
    assert decode_image(cases["EXIF orientation 6"]).orientation_applied == 6
    assert decode_image(cases["EXIF orientation 6"]).pixels.shape == (217, 333, 3)


def test_png_is_unaffected(odd: np.ndarray) -> None:
    assert np.array_equal(decode_image(encode(odd, "PNG")).pixels, odd)


@pytest.mark.parametrize("progressive", [False, True])
def test_a_truncated_jpeg_with_an_eoi_appended_is_refused(odd: np.ndarray, progressive: bool) -> None:
    data = encode(odd, progressive=progressive)
    with pytest.raises(InvalidImageFormatException, match="Could not decode the JPEG image"):
        decode_image(data[: len(data) // 2] + b"\xff\xd9")


def test_corrupt_entropy_data_is_refused(odd: np.ndarray) -> None:
    data = bytearray(encode(odd))
    sos = data.index(b"\xff\xda")
    data[sos + 200 : sos + 202] = b"\xff\xd3"  # a restart marker where none belongs
    with pytest.raises(InvalidImageFormatException, match="Could not decode the JPEG image"):
        decode_image(bytes(data))


def test_a_header_claiming_more_blocks_than_its_data_holds_is_refused_at_once() -> None:
    data = bomb()
    started = time.perf_counter()
    with pytest.raises(InvalidImageFormatException, match="too little data") as info:
        decode_image(data)
    assert time.perf_counter() - started < 0.5  # Pillow decoded it in about 2 s
    assert "1,875,000 8x8 blocks" in str(info.value) and "234,375 needed" in str(info.value)


@pytest.mark.parametrize("progressive", [False, True])
def test_flat_images_the_tightest_real_case_pass_the_bound(progressive: bool) -> None:
    flat = np.full((3000, 4000, 3), 255, np.uint8)
    data = encode(flat, progressive=progressive, optimize=True, quality=50)
    assert np.array_equal(decode_image(data).pixels, pillow(data))


@pytest.mark.parametrize(("marker", "kind"), [(0xC9, "arithmetic-coded"), (0xC3, "lossless"),
                                              (0xC5, "hierarchical")])
def test_other_jpeg_processes_are_refused(odd: np.ndarray, marker: int, kind: str) -> None:
    data = bytearray(encode(odd))
    data[data.index(b"\xff\xc0") + 1] = marker
    with pytest.raises(InvalidImageFormatException, match=kind):
        decode_image(bytes(data))
