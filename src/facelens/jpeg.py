"""JPEG specifics of request decoding (`facelens.imaging`): a cost bound checked before decoding, and strict decoding.

Rules (each an ``InvalidImageFormatException``):

* Only Huffman-coded DCT JPEG is read: baseline (SOF0), extended (SOF1) and progressive (SOF2), i.e. what cameras,
  phones and browsers write. Arithmetic-coded, lossless and hierarchical JPEG are refused.
* Cost bound: every 8x8 block of every component is coded once in a first DC pass (a sequential scan, or a
  progressive scan with Ss = 0 and Ah = 0), and a Huffman code is at least one bit long, so those scans' entropy-coded
  bytes times 8 must reach the number of blocks the frame header declares. A header that claims more than its data
  can hold (a 629-byte file claiming 10000x8000 needs at least 234,375 bytes) is refused after a scan of its markers,
  before a pixel is decoded; an accepted JPEG costs no more to decode than a flat image of its size and byte count.
* Strict decoding: libjpeg-turbo (``simplejpeg``, ``strict=True``) stops at its first warning. Corrupt entropy data,
  data that ends early (a truncated file with an EOI appended), extraneous bytes before a marker: refused, never
  decoded as partly grey pixels.

Decoded pixels are those Pillow gives (the same libjpeg-turbo settings: accurate integer DCT, fancy upsampling).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np
import simplejpeg

from facelens.errors import InvalidImageFormatException

_SOF_READ = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive"}
_SOF_REFUSED = {0xC3: "lossless", 0xC5: "hierarchical", 0xC6: "hierarchical progressive",
                0xC7: "hierarchical lossless", 0xC9: "arithmetic-coded", 0xCA: "arithmetic-coded progressive",
                0xCB: "arithmetic-coded lossless", 0xCD: "hierarchical arithmetic-coded",
                0xCE: "hierarchical arithmetic-coded progressive", 0xCF: "hierarchical arithmetic-coded lossless"}
_SOS, _EOI = 0xDA, 0xD9
# The end of a scan's entropy-coded data: an 0xFF that is not stuffing (FF 00), a restart marker or fill (FF FF).
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_COLORSPACES = {"RGB": "RGB", "L": "GRAY", "CMYK": "CMYK"}


@dataclass(frozen=True)
class _Frame:
    width: int
    height: int
    blocks: int  # 8x8 blocks over all components, without MCU padding (a lower bound for any scan layout)


def _frame(marker: int, segment: bytes) -> _Frame:
    if marker in _SOF_REFUSED:
        raise InvalidImageFormatException(
            f"{_SOF_REFUSED[marker]} JPEG is not supported (only baseline, extended and progressive Huffman JPEG).")
    if len(segment) < 6:
        raise InvalidImageFormatException("JPEG frame header is cut short.")
    _, height, width, count = struct.unpack(">BHHB", segment[:6])
    sampling = [(segment[7 + 3 * i] >> 4, segment[7 + 3 * i] & 15) for i in range(count) if 8 + 3 * i < len(segment)]
    if count == 0 or len(sampling) != count or not all(h and v for h, v in sampling):
        raise InvalidImageFormatException("JPEG frame header declares no or malformed components.")
    h_max, v_max = max(h for h, _ in sampling), max(v for _, v in sampling)
    blocks = sum(_ceil(_ceil(width * h, h_max), 8) * _ceil(_ceil(height * v, v_max), 8) for h, v in sampling)
    return _Frame(width, height, blocks)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def check_cost(data: bytes) -> None:
    """Refuse an unsupported JPEG process, or one whose scans are too small to code the blocks it declares.

    Walks the markers of the first picture (to its EOI, so an MPO's later pictures are not read); a file cut short
    is left to the decoder, which refuses it."""
    frame: _Frame | None = None
    first_pass_bytes = 0
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            raise InvalidImageFormatException(f"JPEG has stray data where a marker belongs (offset {pos:,}).")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == _EOI:
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + length]
        if length < 2 or len(segment) < length - 2:
            break
        if frame is None and (marker in _SOF_READ or marker in _SOF_REFUSED):
            frame = _frame(marker, segment)
        pos += 2 + length
        if marker == _SOS:
            found = _MARKER.search(data, pos)
            scan_end = found.start() if found else end
            ss, ah = (segment[-3], segment[-1] >> 4) if len(segment) >= 4 else (0, 0)
            if ss == 0 and ah == 0:
                first_pass_bytes += scan_end - pos
            pos = scan_end
    if frame is not None and first_pass_bytes * 8 < frame.blocks:
        raise InvalidImageFormatException(
            f"Could not decode the JPEG image: its header declares {frame.width}x{frame.height} "
            f"({frame.blocks:,} 8x8 blocks) but it holds too little data to code them ({first_pass_bytes:,} bytes, "
            f"at least {_ceil(frame.blocks, 8):,} needed): a truncated file or a forged header.")


def decode_strict(data: bytes, mode: str) -> np.ndarray:
    """The pixels of a JPEG whose Pillow mode is `mode` (RGB: HxWx3, L: HxW, CMYK: HxWx4), decoded by libjpeg-turbo
    stopping at its first warning; InvalidImageFormatException for a mode it does not decode to or any warning."""
    colorspace = _COLORSPACES.get(mode)
    if colorspace is None:
        raise InvalidImageFormatException(f"JPEG of mode {mode} is not supported.")
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=True)
    except ValueError as exc:
        reason = " ".join(str(exc).split())[:200] or "corrupt data"
        if "premature end" in reason.lower():
            reason += " (the data ends early: a truncated file?)"
        raise InvalidImageFormatException(f"Could not decode the JPEG image: {reason}") from None
    return pixels[:, :, 0] if colorspace == "GRAY" else pixels
