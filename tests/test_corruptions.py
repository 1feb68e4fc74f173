"""Tests of the CIFAR-10-C-style corruptions on small synthetic images."""

from __future__ import annotations

import numpy as np
import pytest

from uqbench.bench.data import CORRUPTIONS, corrupt

REQUIRED = {"gaussian_noise", "shot_noise", "gaussian_blur", "contrast", "brightness",
            "jpeg", "pixelate"}


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Eight 32x32 images with smooth gradients, hard edges and fine texture, kept away
    from 0 and 255 so that clipping does not hide changes."""
    rng = np.random.default_rng(1234)
    y, x = np.mgrid[0:32, 0:32] / 31.0
    batch = []
    for _ in range(8):
        phase, freq = rng.uniform(0, 2 * np.pi, 3), rng.uniform(1, 4, 3)
        channels = [0.5 + 0.3 * np.sin(np.pi * f * (x + y) + p) for f, p in zip(freq, phase)]
        image = np.stack(channels, axis=-1)
        r0, c0 = rng.integers(4, 20, 2)
        image[r0:r0 + 10, c0:c0 + 10] = rng.uniform(0.15, 0.85, 3)  # a sharp-edged block
        image += rng.normal(0, 0.03, image.shape)  # fine texture
        batch.append(np.clip(image, 0.08, 0.92))
    return np.rint(np.stack(batch) * 255).astype(np.uint8)


def mean_abs_change(before: np.ndarray, after: np.ndarray) -> float:
    return float(np.abs(after.astype(np.float64) - before.astype(np.float64)).mean())


def test_required_corruptions_are_registered():
    assert REQUIRED <= set(CORRUPTIONS)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_shape_dtype_and_input_untouched(images, name):
    original = images.copy()
    out = corrupt(images, name, 3)
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(images, original)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_deterministic_for_a_seed(images, name):
    first, second = corrupt(images, name, 4, seed=7), corrupt(images, name, 4, seed=7)
    np.testing.assert_array_equal(first, second)


NOISES = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"]


@pytest.mark.parametrize("name", NOISES)
def test_noise_depends_on_the_seed(images, name):
    assert not np.array_equal(corrupt(images, name, 4, seed=0), corrupt(images, name, 4, seed=1))


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_change_grows_with_severity(images, name):
    changes = [mean_abs_change(images, corrupt(images, name, s, seed=0)) for s in range(1, 6)]
    assert changes[0] > 0
    assert all(a <= b for a, b in zip(changes, changes[1:])), changes
    assert changes[4] > changes[0]


def test_non_square_images_work(images):
    wide = np.concatenate([images, images], axis=2)  # (N, 32, 64, 3)
    for name in CORRUPTIONS:
        assert corrupt(wide, name, 5).shape == wide.shape


def test_unknown_name_lists_the_valid_ones(images):
    with pytest.raises(ValueError) as info:
        corrupt(images, "fog", 1)
    assert "fog" in str(info.value)
    assert all(name in str(info.value) for name in CORRUPTIONS)


@pytest.mark.parametrize("severity", [0, 6, -1, 2.5, True])
def test_severity_outside_1_to_5(images, severity):
    with pytest.raises(ValueError, match="severity"):
        corrupt(images, "contrast", severity)


def test_rejects_non_uint8_or_wrong_shape(images):
    with pytest.raises(ValueError, match="uint8"):
        corrupt(images.astype(np.float32), "contrast", 1)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(images[..., :2], "contrast", 1)
