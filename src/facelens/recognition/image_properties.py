"""DetectLabels' IMAGE_PROPERTIES: image quality (brightness, sharpness, contrast) and dominant colours.

No model: every value is a documented formula over the decoded sRGB pixels (docs/models.md, "DetectLabels").

* Brightness = 100 x mean(Y) / 255, Y the BT.601 luma (0.299 R + 0.587 G + 0.114 B) of every pixel.
* Contrast = min(100, 100 x std(Y) / 127.5): RMS contrast; 100 is a half-black, half-white image.
* Sharpness = 100 x v / (v + 100), v the variance of the 3x3 Laplacian of Y after shrinking the image so its
  long side is at most 512 px (so the figure does not grow with resolution); v = 100 gives 50. Measured on
  scikit-image's photos: 80-92; after a Gaussian blur of sigma 2: 4-10.
* Dominant colours: k-means (k-means++ seeding from a fixed seed, 20 Lloyd iterations) in CIE L*a*b* over at
  most 8,192 pixels sampled on a regular grid, with k = the colours asked for (never more than the distinct
  colours present); clusters whose centres round to the same sRGB colour are merged. Each colour's
  PixelPercent is the share of the sampled pixels nearest to it; sorted by it, largest first. CSSColor is the
  nearest (CIE76 distance in L*a*b*) of the 147 CSS3 named colours (CSS Color Level 4's list without
  `rebeccapurple`, one spelling of each grey); SimplifiedColor the nearest of `SIMPLIFIED`.

Foreground and Background are not computed: there is no foreground estimate here, so they are omitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

SHARPNESS_SIDE = 512
SHARPNESS_HALF = 100.0  # the Laplacian variance that scores 50
SAMPLE_PIXELS = 8_192
ITERATIONS = 20
SEED = 0

# A small set of plain colour words, each with the sRGB colour it stands for (CSS's value of that name;
# brown is CSS's saddlebrown, as CSS's own "brown" is a dark red).
SIMPLIFIED: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "red": (255, 0, 0),
    "orange": (255, 165, 0), "yellow": (255, 255, 0), "green": (0, 128, 0), "blue": (0, 0, 255),
    "purple": (128, 0, 128), "pink": (255, 192, 203), "brown": (139, 69, 19),
}


@dataclass(frozen=True)
class Quality:
    brightness: float
    sharpness: float
    contrast: float


@dataclass(frozen=True)
class DominantColor:
    red: int
    green: int
    blue: int
    css_color: str
    simplified_color: str
    pixel_percent: float

    @property
    def hex_code(self) -> str:
        return f"#{self.red:02x}{self.green:02x}{self.blue:02x}"


@dataclass(frozen=True)
class ImageProperties:
    quality: Quality
    dominant_colors: list[DominantColor]


def _luma(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def quality(pixels: np.ndarray) -> Quality:
    """Brightness, sharpness and contrast (0-100) of an (H, W, 3) uint8 RGB image, by the module's formulas."""
    luma = _luma(pixels)
    brightness = 100.0 * float(luma.mean()) / 255.0
    contrast = min(100.0, 100.0 * float(luma.std()) / 127.5)
    height, width = luma.shape
    scale = SHARPNESS_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(luma, size, interpolation=cv2.INTER_AREA) if scale < 1 else luma
    variance = float(cv2.Laplacian(small, cv2.CV_32F, ksize=1).var()) if min(small.shape) >= 3 else 0.0
    sharpness = 100.0 * variance / (variance + SHARPNESS_HALF)
    return Quality(brightness, sharpness, contrast)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) sRGB 0-255 -> (N, 3) CIE L*a*b* (OpenCV's float conversion, D65)."""
    return cv2.cvtColor(rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab).reshape(-1, 3)


def _rgb(lab: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(lab.reshape(-1, 1, 3).astype(np.float32), cv2.COLOR_Lab2RGB).reshape(-1, 3)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.int64)


@cache
def _css_table() -> tuple[tuple[str, ...], np.ndarray]:
    """The CSS3 named colours (names, L*a*b*), from matplotlib's CSS4 table less CSS4's one addition."""
    from matplotlib.colors import CSS4_COLORS

    names, values = [], []
    for name, hex_code in sorted(CSS4_COLORS.items()):
        if name == "rebeccapurple" or "grey" in name:  # CSS4 only; "grey" names duplicate the "gray" ones
            continue
        names.append(name)
        values.append([int(hex_code[i:i + 2], 16) for i in (1, 3, 5)])
    return tuple(names), _lab(np.array(values))


@cache
def _simplified_table() -> tuple[tuple[str, ...], np.ndarray]:
    return tuple(SIMPLIFIED), _lab(np.array(list(SIMPLIFIED.values())))


def _nearest(lab: np.ndarray, table: tuple[tuple[str, ...], np.ndarray]) -> list[str]:
    names, values = table
    distances = ((lab[:, None, :] - values[None, :, :]) ** 2).sum(-1)
    return [names[i] for i in distances.argmin(1)]


def _sample(pixels: np.ndarray) -> np.ndarray:
    height, width = pixels.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(height * width / SAMPLE_PIXELS))))
    return pixels[::step, ::step].reshape(-1, 3)


def _kmeans(points: np.ndarray, k: int) -> np.ndarray:
    """Cluster centres of `points` (N, 3): k-means++ seeding (fixed seed), then Lloyd iterations."""
    rng = np.random.default_rng(SEED)
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        d2 = np.min(((points[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        if d2.sum() <= 0:
            break
        centres.append(points[rng.choice(len(points), p=d2 / d2.sum())])
    centre = np.array(centres)
    for _ in range(ITERATIONS):
        nearest = ((points[:, None, :] - centre[None]) ** 2).sum(-1).argmin(1)
        moved = np.array([points[nearest == j].mean(0) if np.any(nearest == j) else centre[j]
                          for j in range(len(centre))])
        if np.allclose(moved, centre, atol=1e-3):
            break
        centre = moved
    return centre


def dominant_colors(pixels: np.ndarray, count: int) -> list[DominantColor]:
    """Up to `count` dominant colours of an (H, W, 3) uint8 RGB image (or region), largest share first."""
    if count <= 0 or pixels.size == 0:
        return []
    sample = _sample(pixels)
    distinct = np.unique(sample, axis=0)
    lab = _lab(sample)
    centres = _kmeans(lab, min(count, len(distinct)))
    rgb = _rgb(centres)
    # merge clusters whose centres are the same sRGB colour; share = the sampled pixels nearest each colour
    unique_rgb, index = np.unique(rgb, axis=0, return_inverse=True)
    nearest = index.reshape(-1)[((lab[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)]
    shares = np.bincount(nearest, minlength=len(unique_rgb)) / len(sample) * 100.0
    unique_lab = _lab(unique_rgb)
    css = _nearest(unique_lab, _css_table())
    simple = _nearest(unique_lab, _simplified_table())
    colors = [DominantColor(int(r), int(g), int(b), css[i], simple[i], float(shares[i]))
              for i, (r, g, b) in enumerate(unique_rgb) if shares[i] > 0]
    return sorted(colors, key=lambda color: -color.pixel_percent)[:count]


def image_properties(pixels: np.ndarray, max_colors: int) -> ImageProperties:
    """Quality and up to `max_colors` dominant colours of a whole image."""
    return ImageProperties(quality(pixels), dominant_colors(pixels, max_colors))
