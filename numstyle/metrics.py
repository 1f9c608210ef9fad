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

And, for a style network, the part of an image that repeats with the
network's total stride (4 px: two stride-2 convolutions down, two x2
up-samplings up), where its checkerboard lives. The network treats pixels
differently by their phase :math:`(i \bmod 4, j \bmod 4)`, so its artefacts
survive averaging over all pixels of one phase while the picture averages
out (a photo or a painting scores about 0.2):

.. math::  \mathrm{CB} = \Big(\frac1{16} \sum_{a,b=0}^{3}
           \big(\overline{Y}_{i \equiv a,\, j \equiv b} - \overline{Y}\big)^2\Big)^{1/2}
           \quad \text{(luma levels, (Q1))}                                      \tag{Q4}
"""
import numpy as np
from scipy.ndimage import correlate1d


def rgb_to_y(rgb):
    """(H, W, 3) RGB 0..255 -> (H, W) luma in 16..235 (Q1), float64."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] +
                   24.966 * rgb[..., 2]) / 255.0  # (Q1)


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

    def blur(x):  # separable window, then keep valid positions
        x = correlate1d(correlate1d(x, g, axis=0, mode="constant"), g, axis=1, mode="constant")
        return x[r:x.shape[0] - r, r:x.shape[1] - r]

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))  # (Q3)
    return float(s.mean())


def y_psnr_ssim(out_rgb, ref_rgb, border):
    """(PSNR, SSIM) on Y with ``border`` pixels shaved, as the SR papers report them."""
    y1, y2 = shave(rgb_to_y(out_rgb), border), shave(rgb_to_y(ref_rgb), border)
    return psnr(y1, y2), ssim(y1, y2)


def checkerboard(rgb, period=4):
    """(Q4) of an (H, W, 3) RGB image: RMS, in luma levels, of its mean over each pixel phase mod
    ``period``."""
    y = rgb_to_y(rgb)
    H, W = y.shape[0] // period * period, y.shape[1] // period * period
    if min(H, W) < 8 * period:
        raise ValueError(
            f"checkerboard needs at least {8 * period}x{8 * period} px, got "
            f"{y.shape[1]}x{y.shape[0]}"
        )
    y = y[:H, :W].reshape(H // period, period, W // period,
                          period)  # (H/p, p, W/p, p): phase axes 1 and 3
    phases = y.mean(axis=(0, 2))                                        # (p, p): mean of each phase
    return float(np.sqrt(np.mean((phases - phases.mean()) ** 2)))      # (Q4)
