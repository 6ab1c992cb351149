"""The MACO parametrization alone, on tiny inputs: shapes, grey and non-square inputs, a
fixed magnitude, determinism."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from pytest_actaudit.engine import maco  # noqa: E402

SHAPES = [(16, 16, 3), (12, 20, 3), (15, 9, 1)]


def _batch(param: maco.MacoParam, seeds: range) -> tf.Tensor:
    return tf.constant(np.stack([param.initial(s) for s in seeds]))


@pytest.mark.parametrize("shape", SHAPES)
def test_images_have_the_input_shape_and_lie_in_0_1(shape):
    param = maco.MacoParam(shape)
    x = _batch(param, range(3))
    assert x.shape == (3, shape[2], shape[0], shape[1] // 2 + 1)
    unit = param.to_unit(x).numpy()
    assert unit.shape == (3, *shape)
    assert np.all((unit > 0) & (unit < 1)) and unit.std() > 0.02
    crops = param.draw(0, 7)
    assert crops.shape == (7, 4)
    image, seen = param.view(x, tf.constant(np.stack([crops[2]] * 3)), tf.constant(2))
    assert image.shape == seen.shape == (3, *shape)
    assert np.all(np.isfinite(seen.numpy()))


@pytest.mark.parametrize("shape", SHAPES)
def test_only_the_phase_changes_the_magnitude_stays(shape):
    """Any phase gives the same magnitude spectrum before the image is standardized: the
    optimizer cannot leave natural image statistics."""
    param = maco.MacoParam(shape)
    height, width, channels = shape
    spectra = []
    for seed in (0, 1):
        phase = tf.constant(param.initial(seed)[None])
        mean, var = tf.nn.moments(phase, axes=[1, 2, 3], keepdims=True)
        standard = (phase - mean) / (tf.sqrt(var) + 1e-5)
        spectrum = tf.complex(tf.cos(standard), tf.sin(standard)) * tf.cast(
            param.magnitude, tf.complex64
        )
        raw = tf.signal.irfft2d(spectrum, fft_length=[height, width])
        spectra.append(np.abs(np.fft.rfft2(raw.numpy()[0])))
    # bins that irfft must make real (DC and Nyquist rows/columns) lose their imaginary part
    inner = (slice(None), slice(1, (height + 1) // 2), slice(1, (width - 1) // 2 + 1))
    np.testing.assert_allclose(spectra[0][inner], spectra[1][inner], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(
        spectra[0][inner], param.magnitude.numpy()[inner], rtol=1e-3, atol=1e-3
    )


def test_same_seed_same_image_other_seed_other_image():
    param = maco.MacoParam((16, 12, 3))
    a = param.to_unit(_batch(param, range(2))).numpy()
    b = param.to_unit(_batch(param, range(2))).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[0] - a[1]).mean() > 0.01
    np.testing.assert_array_equal(param.draw(3, 5), param.draw(3, 5))
    assert not np.array_equal(param.draw(3, 5), param.draw(4, 5))


def test_the_view_of_an_image_depends_on_its_own_draw_only():
    param = maco.MacoParam((16, 16, 3))
    x = _batch(param, range(3))
    crops = tf.constant(np.stack([param.draw(s, 4)[1] for s in range(3)]))
    _, together = param.view(x, crops, tf.constant(1))
    _, alone = param.view(x[1:2], crops[1:2], tf.constant(1))
    np.testing.assert_allclose(together.numpy()[1], alone.numpy()[0], atol=1e-6)


def test_crops_shrink_over_the_run():
    param = maco.MacoParam((16, 16, 3), crop_start=1.0, crop_end=0.5, crop_spread=0.0)
    sides = param.draw(0, 11)[:, 3]
    np.testing.assert_allclose(sides[[0, 5, 10]], [1.0, 0.75, 0.5], atol=1e-6)


def test_magnitude_from_references_is_used_and_checked():
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 256, (4, 10, 14, 3), dtype=np.uint8)
    magnitude = maco.magnitude_from_images(refs, (10, 14, 3))
    assert magnitude.shape == (3, 10, 8)
    param = maco.MacoParam((10, 14, 3), magnitude=magnitude)
    np.testing.assert_array_equal(param.magnitude.numpy(), magnitude)
    with pytest.raises(ValueError, match="input's shape"):
        maco.magnitude_from_images(refs, (10, 12, 3))
    with pytest.raises(ValueError, match="magnitude_from_images"):
        maco.MacoParam((10, 12, 3), magnitude=magnitude)


def test_default_magnitude_falls_with_frequency_like_natural_photos():
    mag = maco.default_magnitude((64, 48, 1))
    fy = np.abs(np.fft.fftfreq(64))[:, None]
    fx = np.fft.rfftfreq(48)[None, :]
    radius = np.hypot(fx, fy)
    low = mag[0][(radius > 0.02) & (radius < 0.05)].mean()
    high = mag[0][radius > 0.3].mean()
    assert low > 5 * high


def test_maco_is_selectable_and_moves_towards_the_class(color_model):
    """Through the public call, on a non-square input: each class's images are read as
    that class (a flat colour, which the colour model wants, is out of MACO's reach: the
    magnitude keeps natural texture in every image) and are the same when run again."""
    import pytest_actaudit
    from pytest_actaudit.settings import parametrization

    from .conftest import COLORS

    assert parametrization(" MACO ") == "maco"
    with pytest.raises(ValueError, match="fourier, pixel or maco"):
        parametrization("lucid")
    audits = pytest_actaudit.maximize(
        color_model, "all", seeds=2, steps=40, labels=COLORS, parametrization="maco",
        learning_rate=0.1,
    )  # fmt: skip
    again = pytest_actaudit.maximize(
        color_model, ["red"], seeds=2, steps=40, labels=COLORS, parametrization="maco",
        learning_rate=0.1,
    )  # fmt: skip
    np.testing.assert_array_equal(audits[0].images, again[0].images)
    assert audits[0].images.shape == (2, 16, 12, 3)
    for k, audit in enumerate(audits):
        read = color_model.predict(audit.images.astype("float32"), verbose=0).argmax(axis=1)
        assert np.all(read == k), (audit.label, audit.probabilities)


def test_grey_images_get_the_contrast_rgb_ones_do():
    """Without the colour mix a grey image was twice as contrasted as an RGB one at the
    same gain and saturated to black and white (the FER model's first MACO images)."""
    grey = maco.MacoParam((32, 32, 1))
    rgb = maco.MacoParam((32, 32, 3))
    unit_grey = grey.to_unit(_batch(grey, range(4))).numpy()
    unit_rgb = rgb.to_unit(_batch(rgb, range(4))).numpy()
    near_ends_grey = np.mean((unit_grey < 0.1) | (unit_grey > 0.9))
    near_ends_rgb = np.mean((unit_rgb < 0.1) | (unit_rgb > 0.9))
    assert near_ends_grey <= 1.5 * near_ends_rgb, (near_ends_grey, near_ends_rgb)
    assert unit_grey.std() < unit_rgb.std() * 1.1
