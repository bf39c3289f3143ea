"""Face thumbnails for a collection whose policy keeps them (KeepFaceCrops, off by default).

A crop is a photo of a person, so it is kept only on that opt-in, only as small as a list needs (a 96x96 JPEG
of the face's box widened by a quarter on each side, about 3 KB), and it lives in the store beside its face
(`face_crops`, written in the face's own transaction and deleted with it by a cascading foreign key: DeleteFaces,
DeleteCollection and retention remove it, and the SQLite store's secure delete overwrites its bytes).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

SIZE = 96  # pixels, square
MARGIN = 0.25  # of the box's larger side, added on each side
QUALITY = 80  # JPEG


def face_crop(pixels: np.ndarray, box: np.ndarray) -> bytes:
    """The JPEG thumbnail of the face at `box` (x1, y1, x2, y2 in pixels of the upright RGB `pixels`): a square
    centred on the box, clipped to the image (so a face at an edge is not centred), resized to SIZE x SIZE."""
    height, width = pixels.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    side = max(x2 - x1, y2 - y1) * (1 + 2 * MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(max(0, round(cx - side / 2))), int(max(0, round(cy - side / 2)))
    right, bottom = int(min(width, round(cx + side / 2))), int(min(height, round(cy + side / 2)))
    if right <= left or bottom <= top:  # a degenerate box: the whole image rather than nothing
        left, top, right, bottom = 0, 0, width, height
    region = Image.fromarray(np.ascontiguousarray(pixels[top:bottom, left:right]))
    out = io.BytesIO()
    region.resize((SIZE, SIZE), Image.Resampling.LANCZOS).save(out, "JPEG", quality=QUALITY)
    return out.getvalue()
