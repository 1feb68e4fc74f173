"""CIFAR-10-C-style image corruptions, made by the project itself.

Each corruption maps uint8 images ``(N, H, W, 3)`` to corrupted uint8 images of the same
shape, at severities 1-5, deterministically for a given seed. The parameter tables follow
the CIFAR (32x32) settings described by Hendrycks & Dietterich (2019), "Benchmarking Neural
Network Robustness to Common Corruptions and Perturbations"; the code is our own, so the
images are close to, but not bit-identical with, the published CIFAR-10-C.

Noise is drawn from ``numpy.random.default_rng(seed)``, one draw for the whole batch, so
an image's noise depends on its position in the batch as well as on the seed.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image

# Severity 1..5 -> parameter, for images in [0, 1] unless said otherwise.
GAUSSIAN_NOISE_STD = (0.04, 0.06, 0.08, 0.09, 0.10)
SHOT_NOISE_PHOTONS = (500, 250, 100, 75, 50)  # Poisson rate at full intensity
IMPULSE_NOISE_AMOUNT = (0.01, 0.02, 0.03, 0.05, 0.07)  # fraction of salt-and-pepper values
SPECKLE_NOISE_STD = (0.06, 0.10, 0.12, 0.16, 0.20)  # multiplicative
GAUSSIAN_BLUR_SIGMA = (0.4, 0.6, 0.7, 0.8, 1.0)  # pixels
# (disk radius in pixels, sigma of the anti-aliasing Gaussian)
DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))
CONTRAST_FACTOR = (0.75, 0.5, 0.4, 0.3, 0.15)  # distance to the mean is scaled by this
BRIGHTNESS_SHIFT = (0.05, 0.1, 0.15, 0.2, 0.3)  # added to HSV value
JPEG_QUALITY = (80, 65, 58, 50, 40)
PIXELATE_SCALE = (0.95, 0.9, 0.85, 0.75, 0.65)  # downsampled side / original side


def _to_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


# --- noise ------------------------------------------------------------------------------


def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Adds zero-mean Gaussian noise."""
    x = _to_float(images)
    return _to_uint8(x + rng.normal(0.0, GAUSSIAN_NOISE_STD[severity - 1], x.shape))


def shot_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Replaces each value by a Poisson photon count (fewer photons, more noise)."""
    photons = SHOT_NOISE_PHOTONS[severity - 1]
    return _to_uint8(rng.poisson(_to_float(images) * photons) / photons)


def impulse_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Sets a random fraction of values to 0 or 255 (salt and pepper, per channel)."""
    amount = IMPULSE_NOISE_AMOUNT[severity - 1]
    out = images.copy()
    hit = rng.random(images.shape) < amount
    out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255).astype(np.uint8)
    return out


def speckle_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Adds Gaussian noise proportional to the intensity."""
    x = _to_float(images)
    return _to_uint8(x + x * rng.normal(0.0, SPECKLE_NOISE_STD[severity - 1], x.shape))


# --- blur -------------------------------------------------------------------------------


def _convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Filters float images ``(N, H, W, C)`` with a small odd-sized 2-D kernel,
    reflecting at the borders."""
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode="reflect")
    h, w = x.shape[1:3]
    out = np.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            if kernel[i, j] != 0:
                out += kernel[i, j] * padded[:, i:i + h, j:j + w]
    return out


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float32)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    k = np.outer(g, g)
    return k / k.sum()


def _disk_kernel(radius: float, alias_sigma: float) -> np.ndarray:
    # A hard disk aliases badly at this size; a small Gaussian softens its rim.
    r = max(1, int(np.ceil(radius)))
    t = np.arange(-r, r + 1, dtype=np.float32)
    disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius ** 2).astype(np.float32)
    disk /= disk.sum()
    g = _gaussian_kernel(alias_sigma)
    size = disk.shape[0] + g.shape[0] - 1
    k = np.zeros((size, size), dtype=np.float32)
    for i in range(g.shape[0]):  # full 2-D convolution of the two small kernels
        for j in range(g.shape[1]):
            k[i:i + disk.shape[0], j:j + disk.shape[1]] += g[i, j] * disk
    return k / k.sum()


def gaussian_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blurs with a Gaussian kernel."""
    kernel = _gaussian_kernel(GAUSSIAN_BLUR_SIGMA[severity - 1])
    return _to_uint8(_convolve(_to_float(images), kernel))


def defocus_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blurs with a disk (out-of-focus lens) kernel."""
    kernel = _disk_kernel(*DEFOCUS_BLUR[severity - 1])
    return _to_uint8(_convolve(_to_float(images), kernel))


# --- photometric ------------------------------------------------------------------------


def contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Pulls every value towards its image's per-channel mean."""
    x = _to_float(images)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return _to_uint8((x - mean) * CONTRAST_FACTOR[severity - 1] + mean)


def brightness(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Raises the HSV value channel, keeping hue and saturation."""
    x = _to_float(images)
    value = x.max(axis=3, keepdims=True)
    new_value = np.minimum(value + BRIGHTNESS_SHIFT[severity - 1], 1.0)
    # With hue and saturation fixed, RGB is proportional to V, so scaling by V'/V is the
    # HSV round trip; black pixels (V = 0, saturation 0) become grey at V'.
    scale = np.divide(new_value, value, out=np.ones_like(value), where=value > 0)
    return _to_uint8(np.where(value > 0, x * scale, new_value))


# --- digital ----------------------------------------------------------------------------


def jpeg(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Round-trips each image through JPEG compression."""
    quality = JPEG_QUALITY[severity - 1]
    out = np.empty_like(images)
    for k, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[k] = np.asarray(decoded.convert("RGB"))
    return out


def pixelate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Downsamples with box averaging, then scales back up with box filtering."""
    h, w = images.shape[1:3]
    scale = PIXELATE_SCALE[severity - 1]
    small = (max(1, int(w * scale)), max(1, int(h * scale)))
    out = np.empty_like(images)
    for k, image in enumerate(images):
        down = Image.fromarray(image).resize(small, Image.Resampling.BOX)
        out[k] = np.asarray(down.resize((w, h), Image.Resampling.BOX))
    return out


Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "defocus_blur": defocus_blur,
    "contrast": contrast,
    "brightness": brightness,
    "jpeg": jpeg,
    "pixelate": pixelate,
}


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Applies one corruption to a batch of images.

    Args:
        images: uint8 array ``(N, H, W, 3)``.
        name: A key of ``CORRUPTIONS``.
        severity: 1 (mild) to 5 (strong).
        seed: Seed of the noise; the same inputs and seed give the same output.

    Returns:
        A new uint8 array of the same shape.

    Raises:
        ValueError: unknown name, severity outside 1-5, or images not uint8 (N, H, W, 3).
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; valid: {', '.join(sorted(CORRUPTIONS))}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) \
            or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer from 1 to 5, got {severity!r}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    out = CORRUPTIONS[name](images, int(severity), np.random.default_rng(seed))
    assert out.shape == images.shape and out.dtype == np.uint8
    return out
