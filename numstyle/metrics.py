r"""Image quality for super-resolution: PSNR and SSIM on the luminance (Y) channel.

As SRCNN and Johnson et al. measure them: RGB in 0..255 converted to
ITU-R BT.601 luma, ``scale`` pixels cropped from every border, then

.. math::  Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255                         \tag{Q1}
.. math::  \mathrm{PSNR} = 10 \log_{10} \frac{255^2}{\frac1n \sum (Y - \hat Y)^2}    \tag{Q2}
.. math::  \mathrm{SSIM} = \mathrm{mean}\ \frac{(2 \mu_x \mu_y + c_1)(2 \sigma_{xy} + c_2)}
           {(\mu_x^2 + \mu_y^2 + c_1)(\sigma_x^2 + \sigma_y^2 + c_2)}                   \tag{Q3}

with local statistics under an 11x11 Gaussian window (sigma 1.5), valid
positions only, :math:`c_1 = (0.01 \cdot 255)^2`, :math:`c_2 = (0.03 \cdot 255)^2`
(Wang et al., 2004).

And, for the up-sampling layers of a style network, how strongly an image
repeats with period 2 or 4 pixels (the checkerboard of stride-2 transposed
convolutions): with :math:`\bar P_x(f)` the power spectrum of the
Hann-windowed luma at horizontal frequency ``f`` cycles per pixel, averaged
over all vertical frequencies (and :math:`\bar P_y` the other way round),

.. math::  \mathrm{CB} = \max_{a \in \{x, y\},\ f \in \{1/4,\, 1/2\}}
           \frac{\bar P_a(f)}{\operatorname{mean}_{|k| \in \{3, 4\}} \bar P_a(f + k/n_a)}     \tag{Q4}

the peak over its neighbours 3 and 4 frequency bins away (the window's main
lobe is 2 bins wide). About 1 for a photo or a painting; a visible
checkerboard is 10 or more.
"""
import numpy as np
from scipy.ndimage import correlate1d


def rgb_to_y(rgb):
    """(H, W, 3) RGB 0..255 -> (H, W) luma in 16..235 (Q1), float64."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0   # (Q1)


def shave(a, border):
    return a[border:a.shape[0] - border, border:a.shape[1] - border] if border else a


def psnr(a, b, peak=255.0):
    """PSNR in dB between two arrays (Q2); inf when equal."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak ** 2 / mse))   # (Q2)


def gaussian_window(size=11, sigma=1.5):
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(a, b, peak=255.0, size=11, sigma=1.5):
    """Mean SSIM of two greyscale images (Q3), Gaussian window, valid positions only."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    g = gaussian_window(size, sigma)
    r = size // 2

    def blur(x):                                               # separable window, then keep valid positions
        x = correlate1d(correlate1d(x, g, axis=0, mode="constant"), g, axis=1, mode="constant")
        return x[r:x.shape[0] - r, r:x.shape[1] - r]

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))   # (Q3)
    return float(s.mean())


def y_psnr_ssim(out_rgb, ref_rgb, border):
    """(PSNR, SSIM) on Y with ``border`` pixels shaved, as the SR papers report them."""
    y1, y2 = shave(rgb_to_y(out_rgb), border), shave(rgb_to_y(ref_rgb), border)
    return psnr(y1, y2), ssim(y1, y2)


def checkerboard_ratio(rgb):
    """(Q4) of an (H, W, 3) RGB image: power at periods 2 and 4 px over its spectral neighbours."""
    y = rgb_to_y(rgb)
    y = y[:y.shape[0] // 4 * 4, :y.shape[1] // 4 * 4]                   # f = 1/4, 1/2 fall on exact bins
    if min(y.shape) < 32:
        raise ValueError(f"checkerboard_ratio needs at least 32x32 px, got {y.shape[1]}x{y.shape[0]}")
    window = np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))  # (H, W): no leakage from the borders
    power = np.abs(np.fft.fft2((y - y.mean()) * window)) ** 2           # (H, W), bin k = k / n cycles per px
    ratios = []
    for axis in (0, 1):                                                 # 0: vertical frequency, 1: horizontal
        n = y.shape[axis]
        mean_power = power.mean(axis=1 - axis)                          # (n,): averaged over the other axis
        for f in (0.25, 0.5):
            k = int(round(f * n))
            neighbours = [mean_power[(k + d) % n] for d in (-4, -3, 3, 4)]
            ratios.append(mean_power[k] / max(np.mean(neighbours), 1e-30))
    return float(max(ratios))
