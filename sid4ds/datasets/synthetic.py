"""Synthetic images of machined metal surfaces with labelled defects.

:func:`make_defect_images` draws grey-scale images of turned/milled surfaces (stripes,
uneven lighting, sensor noise) of which a chosen fraction carries one defect: a scratch,
a crack, a pit or an inclusion. Each image comes with a pixel mask of the defect, so the
same data serves anomaly detection (image labels ``masks.any(axis=(1, 2))``) and
segmentation.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from sid4ds._core.random import make_rng
from sid4ds._core.validation import check_choice, check_float, check_int

__all__ = ["DEFECT_KINDS", "DRIFT_KINDS", "make_defect_images"]

#: The kinds of defect that :func:`make_defect_images` draws.
DEFECT_KINDS = ("scratch", "crack", "pit", "inclusion")
_KIND_PROBABILITIES = np.array([0.3, 0.2, 0.25, 0.25])  # same order as DEFECT_KINDS

# Share of defects drawn faint: their contrast is close to the image's noise level.
_FAINT_FRACTION = 0.25
# Defect contrast as a multiple of the image's clutter level (noise and fine stripes).
_FAINT_CONTRAST = (1.5, 3.0)
_CLEAR_CONTRAST = (3.5, 9.0)
# Contrast factor per kind: large blobs stay visible at a lower contrast than thin lines.
_KIND_CONTRAST = {"scratch": 1.0, "crack": 1.0, "pit": 1.0, "inclusion": 0.6}
# Largest defect contrast in grey levels (images span [0, 1]): keeps clipping rare.
_MAX_CONTRAST = 0.35

# Standard deviation of the additive and of the multiplicative (relative) sensor noise.
_NOISE_LEVEL = 0.02
_SHOT_NOISE_LEVEL = 0.01

# Amplitude range (log-uniform) of the fine turning marks, before the per-image contrast.
_FINE_MARK_AMPLITUDE = (0.003, 0.02)

# Defect area as a share of the image; never fewer than _MIN_AREA_PIXELS pixels.
_MIN_AREA_FRACTION = 0.002
_MAX_AREA_FRACTION = 0.05
_MIN_AREA_PIXELS = 2
_MAX_DRAWS = 20

#: The changes of the line that ``make_defect_images(drift=...)`` can draw.
DRIFT_KINDS = ("texture", "lighting", "noise")

# Pixels rendered at once: bounds the float32 temporaries to a few MB each.
_CHUNK_PIXELS = 2**19

# Gaussian profile exp(-d**2 / (2 * s**2)) exceeds half its peak for d < this * s.
_HALF_MAX_RADIUS = float(np.sqrt(2.0 * np.log(2.0)))


def _area_band(image_size: int) -> tuple[int, int]:
    """Smallest and largest allowed defect area in pixels."""
    n_pixels = image_size * image_size
    low = max(_MIN_AREA_PIXELS, int(np.ceil(_MIN_AREA_FRACTION * n_pixels)))
    high = int(np.floor(_MAX_AREA_FRACTION * n_pixels))
    return low, max(high, low)


def _draw_surface_parameters(rng: np.random.Generator, n_samples: int, size: int) -> dict:
    """Per-image settings of the background, each an array of shape (n_samples,)."""

    def uniform(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, n_samples)

    stained = rng.random(n_samples) < 0.3
    return {
        "brightness": uniform(0.35, 0.6),
        "contrast": uniform(0.6, 1.4),
        # Turning marks: three sinusoids across a jittered direction, slightly wavy.
        "angle": uniform(-0.3, 0.3),
        "fine_period": uniform(2.6, 5.0),
        "fine_amplitude": np.exp(uniform(*np.log(_FINE_MARK_AMPLITUDE))),
        "fine_harmonic": uniform(0.0, 0.4),
        "fine_phase": uniform(0.0, 2 * np.pi),
        "mid_period": uniform(6.0, 16.0),
        "mid_amplitude": uniform(0.0, 0.025),
        "mid_phase": uniform(0.0, 2 * np.pi),
        "coarse_period": uniform(0.5, 1.5) * size,
        "coarse_amplitude": uniform(0.0, 0.06),
        "coarse_phase": uniform(0.0, 2 * np.pi),
        "wave_amplitude": uniform(0.0, 1.5),
        "wave_period": uniform(0.5, 2.0) * size,
        "wave_phase": uniform(0.0, 2 * np.pi),
        # Mild texture variation: the fine marks fade and strengthen along the stripes.
        "chatter_depth": uniform(0.0, 0.5),
        "chatter_period": uniform(0.3, 1.0) * size,
        "chatter_phase": uniform(0.0, 2 * np.pi),
        # Harmless stain (a broad, smooth blotch) on about 30% of the images.
        "stain_amplitude": np.where(stained, uniform(-0.06, 0.06), 0.0),
        "stain_row": uniform(0.0, 1.0) * size,
        "stain_col": uniform(0.0, 1.0) * size,
        "stain_width": uniform(0.15, 0.35) * size,
        # Lighting: a linear gradient and radial vignetting around an off-centre point.
        "gradient": uniform(-0.2, 0.2),
        "gradient_angle": uniform(0.0, 2 * np.pi),
        "vignetting": uniform(0.0, 0.15),
        "light_row": uniform(0.3, 0.7) * size,
        "light_col": uniform(0.3, 0.7) * size,
        # Sensor noise of one camera: additive plus a little multiplicative noise.
        "noise": np.full(n_samples, _NOISE_LEVEL),
        "shot_noise": np.full(n_samples, _SHOT_NOISE_LEVEL),
    }


def _apply_drift(params: dict, kind: str, rows: slice) -> None:
    """Change the surface parameters of ``rows`` in place as the drift ``kind`` says.

    Every change is a fixed function of the parameters already drawn, so a drift draws no
    random numbers: the images before the drift, and every defect and noise draw, stay those
    of the same call without it.
    """
    if kind == "texture":
        # a milled surface instead of a turned one: coarser, stronger marks across the
        # other direction, a stronger mid-scale waviness
        params["angle"][rows] += np.pi / 2
        params["fine_period"][rows] *= 1.6
        params["fine_amplitude"][rows] *= 2.5
        params["mid_amplitude"][rows] *= 2.0
    elif kind == "lighting":
        # a new lamp: brighter, with a steeper gradient and deeper vignetting
        params["brightness"][rows] += 0.1
        params["gradient"][rows] *= 2.5
        params["vignetting"][rows] *= 2.5
    else:
        # another camera: 2.5 times the sensor noise
        params["noise"][rows] *= 2.5
        params["shot_noise"][rows] *= 2.5


def _render_surfaces(params: dict, chunk: slice, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free images and their lighting-only version, both float32 (n, size, size)."""

    def get(name: str) -> np.ndarray:
        return params[name][chunk, None, None].astype(np.float32)

    two_pi = np.float32(2 * np.pi)
    coordinates = np.arange(size, dtype=np.float32)
    rows, cols = coordinates[:, None], coordinates[None, :]  # broadcast to (size, size)
    centred_rows, centred_cols = rows - (size - 1) / 2, cols - (size - 1) / 2
    cos_angle, sin_angle = np.cos(get("angle")), np.sin(get("angle"))
    across = centred_rows * cos_angle - centred_cols * sin_angle  # across the marks
    along = centred_rows * sin_angle + centred_cols * cos_angle  # along the marks
    across += get("wave_amplitude") * np.sin(
        two_pi / get("wave_period") * along + get("wave_phase")
    )
    fine_argument = two_pi / get("fine_period") * across + get("fine_phase")
    chatter = 1.0 + get("chatter_depth") * np.cos(
        two_pi / get("chatter_period") * along + get("chatter_phase")
    )
    relief = np.sin(fine_argument)
    relief += get("fine_harmonic") * np.sin(2 * fine_argument)
    relief *= get("fine_amplitude") * chatter
    relief += get("mid_amplitude") * np.sin(two_pi / get("mid_period") * across + get("mid_phase"))
    relief += get("coarse_amplitude") * np.sin(
        two_pi / get("coarse_period") * across + get("coarse_phase")
    )
    # A Gaussian stain factorises into a row profile times a column profile.
    stain_spread = -0.5 / get("stain_width") ** 2
    relief += (get("stain_amplitude") * np.exp(stain_spread * (rows - get("stain_row")) ** 2)) * (
        np.exp(stain_spread * (cols - get("stain_col")) ** 2)
    )

    gradient_angle = get("gradient_angle")
    gradient = get("gradient") / size
    vignetting = get("vignetting") / (size / 2) ** 2
    lighting = (
        1.0
        + gradient * np.cos(gradient_angle) * centred_rows
        - vignetting * (rows - get("light_row")) ** 2
    ) + (
        gradient * np.sin(gradient_angle) * centred_cols
        - vignetting * (cols - get("light_col")) ** 2
    )
    base = get("brightness") * lighting
    relief *= get("contrast") * lighting
    relief += base
    return relief, base


def _render_segments(
    starts: np.ndarray, ends: np.ndarray, widths: np.ndarray, strengths: np.ndarray, size: int
) -> np.ndarray:
    """Weight map (size, size) of thin strokes along segments with Gaussian cross-sections."""
    points = np.concatenate([starts, ends])
    margin = 3.0 * float(widths.max()) + 1.0
    row_low = max(int(np.floor(points[:, 0].min() - margin)), 0)
    row_high = min(int(np.ceil(points[:, 0].max() + margin)) + 1, size)
    col_low = max(int(np.floor(points[:, 1].min() - margin)), 0)
    col_high = min(int(np.ceil(points[:, 1].max() + margin)) + 1, size)
    weight = np.zeros((size, size))
    if row_low >= row_high or col_low >= col_high:
        return weight
    rows, cols = np.mgrid[row_low:row_high, col_low:col_high]
    pixels = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float64)[:, None, :]
    directions = ends - starts
    squared_lengths = np.maximum((directions**2).sum(axis=1), 1e-12)
    position = np.clip(((pixels - starts) * directions).sum(axis=2) / squared_lengths, 0.0, 1.0)
    nearest = starts + position[:, :, None] * directions
    squared_distance = ((pixels - nearest) ** 2).sum(axis=2)
    stroke = (strengths * np.exp(-0.5 * squared_distance / widths**2)).max(axis=1)
    weight[row_low:row_high, col_low:col_high] = stroke.reshape(rows.shape)
    return weight


def _longest_stroke(size: int) -> float:
    """Longest scratch or crack: 3/4 of the image, shorter where it would exceed 5% area."""
    return min(0.75 * size, 0.03 * size * size)


def _draw_scratch(rng: np.random.Generator, size: int) -> np.ndarray:
    """A thin, gently bent line that fades towards its ends."""
    length = rng.uniform(0.4, 1.0) * _longest_stroke(size)
    heading = rng.uniform(0.0, np.pi)
    direction = np.array([np.sin(heading), np.cos(heading)])
    normal = np.array([direction[1], -direction[0]])
    centre = rng.uniform(0.2, 0.8, 2) * (size - 1)
    bend = rng.uniform(-0.15, 0.15) * length
    start, end = centre - direction * length / 2, centre + direction * length / 2
    control = centre + normal * 2.0 * bend
    fraction = np.linspace(0.0, 1.0, 17)[:, None]
    curve = (1 - fraction) ** 2 * start + 2 * (1 - fraction) * fraction * control
    curve = curve + fraction**2 * end
    middles = 0.5 * (fraction[1:, 0] + fraction[:-1, 0])
    strengths = 0.55 + 0.45 * np.sin(np.pi * middles) ** 0.7
    widths = np.full(16, rng.uniform(0.45, 0.8))
    return _render_segments(curve[:-1], curve[1:], widths, strengths, size)


def _jagged_path(
    rng: np.random.Generator, start: np.ndarray, heading: float, n_steps: int, step: float
) -> np.ndarray:
    headings = heading + np.cumsum(rng.normal(0.0, 0.15, n_steps))
    headings = headings + rng.normal(0.0, 0.55, n_steps)
    steps = step * np.stack([np.sin(headings), np.cos(headings)], axis=1)
    return np.concatenate([start[None], start + np.cumsum(steps, axis=0)])


def _draw_crack(rng: np.random.Generator, size: int) -> np.ndarray:
    """A thin jagged path with up to two side branches."""
    n_steps = int(rng.integers(8, 15))
    step = rng.uniform(0.4, 0.8) * _longest_stroke(size) / n_steps
    heading = rng.uniform(0.0, 2 * np.pi)
    path = _jagged_path(rng, np.zeros(2), heading, n_steps, step)
    path += rng.uniform(0.25, 0.75, 2) * (size - 1) - path.mean(axis=0)
    width = rng.uniform(0.4, 0.65)
    starts, ends = [path[:-1]], [path[1:]]
    widths, strengths = [np.full(n_steps, width)], [rng.uniform(0.85, 1.0, n_steps)]
    for _ in range(int(rng.integers(0, 3))):
        fork = int(rng.integers(2, n_steps - 1))
        side = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.1)
        branch_steps = int(rng.integers(3, 7))
        branch = _jagged_path(rng, path[fork], heading + side, branch_steps, step * 0.8)
        starts.append(branch[:-1])
        ends.append(branch[1:])
        widths.append(np.full(branch_steps, 0.85 * width))
        strengths.append(np.linspace(0.9, 0.6, branch_steps))
    return _render_segments(
        np.concatenate(starts),
        np.concatenate(ends),
        np.concatenate(widths),
        np.concatenate(strengths),
        size,
    )


def _draw_pit(rng: np.random.Generator, size: int) -> np.ndarray:
    """A small elliptical spot."""
    area = max(size * size * np.exp(rng.uniform(np.log(0.0025), np.log(0.012))), 3.0)
    half_max_radius = np.sqrt(area / np.pi)
    spread = half_max_radius / _HALF_MAX_RADIUS
    elongation = rng.uniform(0.7, 1.4)
    heading = rng.uniform(0.0, np.pi)
    centre = rng.uniform(half_max_radius, size - 1 - half_max_radius, 2)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    rows, cols = rows - centre[0], cols - centre[1]
    major = rows * np.cos(heading) + cols * np.sin(heading)
    minor = -rows * np.sin(heading) + cols * np.cos(heading)
    squared = (major / (spread * elongation)) ** 2 + (minor * elongation / spread) ** 2
    return np.exp(-0.5 * squared)


def _draw_inclusion(rng: np.random.Generator, size: int) -> np.ndarray:
    """An irregular blob with a soft one-pixel edge."""
    area = size * size * np.exp(rng.uniform(np.log(0.008), np.log(0.04)))
    mean_radius = max(np.sqrt(area / np.pi), 1.0)
    centre = rng.uniform(mean_radius, size - 1 - mean_radius, 2)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    rows, cols = rows - centre[0], cols - centre[1]
    polar_angle = np.arctan2(rows, cols)
    outline = np.ones_like(polar_angle)
    for harmonic in range(2, 6):
        outline += rng.uniform(0.0, 0.4 / harmonic**0.7) * np.cos(
            harmonic * polar_angle + rng.uniform(0.0, 2 * np.pi)
        )
    outline = mean_radius * np.maximum(outline, 0.3)
    return np.clip(outline - np.hypot(rows, cols) + 0.5, 0.0, 1.0)


_DRAW = {
    "scratch": _draw_scratch,
    "crack": _draw_crack,
    "pit": _draw_pit,
    "inclusion": _draw_inclusion,
}


def _draw_defect_region(
    rng: np.random.Generator, kind: str, size: int
) -> tuple[str, np.ndarray, np.ndarray]:
    """Kind, weight map (peak 1) and mask of one defect whose area lies in the allowed band.

    A kind that does not fit the band after ``_MAX_DRAWS`` draws (only scratches and
    cracks in images under 12 pixels) is replaced by a pit.
    """
    low, high = _area_band(size)
    for candidate in (kind, "pit"):
        for _ in range(_MAX_DRAWS):
            weight = _DRAW[candidate](rng, size)
            peak = weight.max()
            if peak <= 0.0:
                continue
            weight = weight / peak
            defect_region = weight > 0.5
            if low <= defect_region.sum() <= high:
                return candidate, weight, defect_region
    # Last resort, not reached in practice: a round spot sized inside the band.
    radius = np.sqrt(0.5 * (low + high) / np.pi)
    centre = rng.integers(int(np.ceil(radius)), size - int(np.ceil(radius)), 2)
    rows, cols = np.mgrid[0:size, 0:size]
    squared = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2
    weight = np.exp(-0.5 * squared / (radius / _HALF_MAX_RADIUS) ** 2)
    return "pit", weight, weight > 0.5


def _add_defect(
    image: np.ndarray,
    base: np.ndarray,
    rng: np.random.Generator,
    clutter: float,
    mask: np.ndarray,
) -> None:
    """Draw one defect, paint it into ``image`` and mark it in ``mask`` (both in place)."""
    size = image.shape[0]
    kind = DEFECT_KINDS[int(rng.choice(len(DEFECT_KINDS), p=_KIND_PROBABILITIES))]
    kind, weight, defect_region = _draw_defect_region(rng, kind, size)
    faint = rng.random() < _FAINT_FRACTION
    contrast = clutter * rng.uniform(*(_FAINT_CONTRAST if faint else _CLEAR_CONTRAST))
    contrast = min(contrast * _KIND_CONTRAST[kind], _MAX_CONTRAST)
    if kind == "crack":
        sign = -1.0
    elif kind == "pit":
        sign = -1.0 if rng.random() < 0.7 else 1.0
    else:
        sign = rng.choice([-1.0, 1.0])
    if kind == "inclusion":
        # Replace most of the machining marks inside the blob by a grainy texture.
        texture = ndimage.gaussian_filter(rng.standard_normal((size, size)), 0.8)
        texture *= rng.uniform(0.2, 0.5) * contrast / max(texture.std(), 1e-12)
        damping = rng.uniform(0.5, 0.9)
        image -= damping * weight * (image - base)
        image += weight * (sign * contrast + texture)
    else:
        image += sign * contrast * weight
    mask[defect_region] = 1


def make_defect_images(
    n_samples: int = 1000,
    image_size: int = 64,
    defect_ratio: float = 0.05,
    random_state: int | np.random.Generator | np.random.RandomState | None = None,
    *,
    drift: str | None = None,
    drift_from: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate grey-scale images of machined surfaces, some with a labelled defect.

    Every image shows a metal surface: turning marks (a sum of three sinusoids with
    per-image period, amplitude, phase and angle, slightly wavy and fading in and out), a
    linear lighting gradient with off-centre vignetting, per-image brightness and contrast,
    an occasional harmless stain, and the sensor noise of one camera (Gaussian with standard
    deviation 0.02 plus 1% multiplicative noise, the same for every image). Exactly
    ``round(n_samples * defect_ratio)`` images, at random positions, carry one defect:

    - ``scratch`` (30%): a thin bent line, lighter or darker, fading towards its ends;
    - ``crack`` (20%): a thin dark jagged path with up to two branches;
    - ``pit`` (25%): a small elliptical spot, mostly dark;
    - ``inclusion`` (25%): an irregular blob of another brightness and a grainy texture.

    The defect contrast is a multiple of the image's clutter level (noise and fine marks,
    0.02 to 0.03 grey levels): 75% of defects are clearly visible (3.5 to 9 times the
    clutter level), 25% are faint (1.5 to 3 times); inclusions, being large, get 0.6 times
    that; no defect exceeds 0.35. The mask marks the pixels where the defect's rendering
    weight exceeds half its peak, i.e. where at least half of the defect's contrast was
    added; its soft edge changes the neighbouring pixels by less. Defects cover 0.2% to
    5% of the image (about 0.25% to 4% at 64x64), but never fewer than 2 pixels: below
    32x32 pixels 0.2% is less than that, so at 16x16 a defect covers 2 to 12 pixels.
    Below 12x12 pixels a scratch or crack that cannot fit becomes a pit.

    ``drift`` changes the line from image ``drift_from`` on, as tools wear or parts of the
    set-up are replaced (a stream of batches whose later ones look different):

    - ``"texture"``: a milled surface instead of a turned one: the marks run across the
      other direction, 1.6 times coarser and 2.5 times stronger;
    - ``"lighting"``: a new lamp: 0.1 brighter, 2.5 times the lighting gradient and the
      vignetting;
    - ``"noise"``: another camera: 2.5 times the sensor noise.

    The drifted images carry their own defects, drawn as above against their own clutter
    level (so a stronger texture or noise gets stronger defects, as visible as before).
    A drift draws no random numbers: the images before ``drift_from`` are those of the same
    call without ``drift``, bit for bit, and the masks of every image are the same (the
    same images are defective, with the same defects); only the drifted surfaces differ.

    Defects are not trivially found: ranking the default data set (1000 images of 64x64,
    5% defective) by ``max |image - scipy.ndimage.gaussian_filter(image, sigma=2)|`` puts
    50% of the defective images in the top 10% for ``random_state=0``, and 52% ± 2%
    (mean ± std) over seeds 0 to 4 (``benchmarks/naive_recall.py`` measures this). Faint
    defects hide in the noise, the blur keeps much of a wide inclusion, and fine marks
    on some normal images deviate from their blur as much as many defects do. A model of
    the surface does better: the noise level is the same in every image, so what it
    cannot predict stands out.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of images, at least 1.
    image_size : int, default=64
        Height and width of the square images in pixels, at least 8.
    defect_ratio : float, default=0.05
        Share of images with a defect, in [0, 1].
    random_state : int, numpy Generator, RandomState or None, default=None
        Seed or generator; the same int gives identical arrays. A Generator or RandomState
        passed in is drawn from once (it is advanced) to seed the generator of the images.
        The global numpy random state is never used or changed.
    drift : {"texture", "lighting", "noise"} or None, default=None
        How the images from ``drift_from`` on differ from the earlier ones (see above);
        None: no drift.
    drift_from : int, default=0
        The first drifted image (0: all of them), in [0, n_samples]; used only with
        ``drift``.

    Returns
    -------
    X : ndarray of shape (n_samples, 1, image_size, image_size), dtype float32
        The images, values in [0, 1].
    masks : ndarray of shape (n_samples, image_size, image_size), dtype uint8
        1 where a pixel belongs to a defect, 0 elsewhere; all zero for normal images.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``n_samples < 1``, ``image_size < 8``, ``defect_ratio`` is outside [0, 1],
        ``drift`` is not a kind of :data:`DRIFT_KINDS`, ``drift_from`` is outside
        [0, n_samples], or ``drift_from`` is given without ``drift``.

    Examples
    --------
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=200, image_size=32, random_state=0)
    >>> X.shape, X.dtype, masks.shape, masks.dtype
    ((200, 1, 32, 32), dtype('float32'), (200, 32, 32), dtype('uint8'))
    >>> is_defective = masks.any(axis=(1, 2))
    >>> int(is_defective.sum())
    10
    >>> bool(X.min() >= 0.0 and X.max() <= 1.0)
    True

    A line whose lighting changes after the first 150 images:

    >>> X_drift, masks_drift = make_defect_images(n_samples=200, image_size=32,
    ...                                           random_state=0, drift="lighting",
    ...                                           drift_from=150)
    >>> bool((X_drift[:150] == X[:150]).all() and (masks_drift == masks).all())
    True
    >>> bool(X_drift[150:].mean() > X[150:].mean())
    True
    """
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    image_size = check_int(image_size, "image_size", minimum=8)
    defect_ratio = check_float(defect_ratio, "defect_ratio", low=0.0, high=1.0)
    if drift is not None:
        check_choice(drift, "drift", DRIFT_KINDS)
        drift_from = check_int(drift_from, "drift_from", minimum=0)
        if drift_from > n_samples:
            raise ValueError(f"drift_from must be in [0, n_samples={n_samples}]; got "
                             f"{drift_from}: pass the index of the first drifted image")
    elif drift_from != 0:
        raise ValueError(f"drift_from={drift_from!r} was given without drift; pass drift="
                         f"one of {', '.join(map(repr, DRIFT_KINDS))} as well, or leave "
                         f"drift_from out")
    rng = make_rng(random_state)

    n_defective = int(round(n_samples * defect_ratio))
    is_defective = np.zeros(n_samples, dtype=bool)
    is_defective[rng.choice(n_samples, size=n_defective, replace=False)] = True
    params = _draw_surface_parameters(rng, n_samples, image_size)
    if drift is not None:
        _apply_drift(params, drift, slice(drift_from, None))
    # The clutter level that defect contrast is measured against.
    clutter = np.sqrt(
        params["noise"] ** 2 + 0.5 * (params["contrast"] * params["fine_amplitude"]) ** 2
    )

    X = np.empty((n_samples, 1, image_size, image_size), dtype=np.float32)
    masks = np.zeros((n_samples, image_size, image_size), dtype=np.uint8)
    chunk_size = max(1, _CHUNK_PIXELS // (image_size * image_size))
    for first in range(0, n_samples, chunk_size):
        chunk = slice(first, min(first + chunk_size, n_samples))
        images, base = _render_surfaces(params, chunk, image_size)
        for offset in np.flatnonzero(is_defective[chunk]):
            index = first + offset
            _add_defect(images[offset], base[offset], rng, clutter[index], masks[index])
        noise_level = np.sqrt(
            params["noise"][chunk, None, None].astype(np.float32) ** 2
            + (params["shot_noise"][chunk, None, None].astype(np.float32) * images) ** 2
        )
        images += noise_level * rng.standard_normal(images.shape, dtype=np.float32)
        X[chunk, 0] = np.clip(images, 0.0, 1.0)
    return X, masks
