r"""Colour control (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer").

Two ways to keep the photo's colours:

1. **Luminance only.** Transfer the style on the luminance channel and put
   the photo's chroma back. With the YIQ transform (a fixed 3x3 matrix)

   .. math::  \begin{bmatrix} Y \\ I \\ Q \end{bmatrix}
              = T \begin{bmatrix} R \\ G \\ B \end{bmatrix}                             \tag{CC1}

   the result is :math:`T^{-1}[Y_{\mathrm{result}}, I_{\mathrm{photo}}, Q_{\mathrm{photo}}]`.
   The style image's luminance is first matched to the photo's mean and spread,
   :math:`Y_s \leftarrow (Y_s - \mu_s) \sigma_c / \sigma_s + \mu_c`.

2. **Colour histogram matching.** Before the transfer, give the style
   image the photo's colour mean and covariance by an affine map of its
   pixels:

   .. math::  x' = A (x - \mu_s) + \mu_c, \qquad A = \Sigma_c^{1/2} \Sigma_s^{-1/2}     \tag{CC2}

   with symmetric matrix square roots from the eigen-decompositions, so that
   :math:`A \Sigma_s A^\top = \Sigma_c`.
"""
import numpy as np

from .image import resize

YIQ = np.array([[0.299, 0.587, 0.114],
                [0.595716, -0.274453, -0.321263],
                [0.211456, -0.522591, 0.311135]])


def rgb_to_yiq(rgb):
    """(H, W, 3) RGB -> YIQ (CC1)."""
    return np.asarray(rgb, np.float64) @ YIQ.T


def yiq_to_rgb(yiq):
    """Inverse of (CC1)."""
    return np.asarray(yiq, np.float64) @ np.linalg.inv(YIQ).T


def luminance_image(rgb, like=None):
    """A grey RGB image holding the luminance of ``rgb``; matched to ``like``'s luminance mean and
    spread."""
    y = rgb_to_yiq(rgb)[..., 0]
    if like is not None:
        yl = rgb_to_yiq(like)[..., 0]
        y = (y - y.mean()) * (yl.std() / max(y.std(), 1e-6)) + yl.mean()
    return np.repeat(np.clip(y, 0, 255)[..., None], 3, axis=2).astype(np.float32)


def restore_chroma(result_rgb, photo_rgb):
    """(CC1): the result's luminance with the photo's chroma (the photo resized to the result
    first)."""
    photo = resize(photo_rgb, shape=result_rgb.shape[:2])
    yiq = rgb_to_yiq(photo)
    yiq[..., 0] = rgb_to_yiq(result_rgb)[..., 0]
    return np.clip(yiq_to_rgb(yiq), 0, 255).astype(np.float32)


def match_color(source_rgb, target_rgb):
    """(CC2): ``source`` with the colour mean and covariance of ``target`` (both (H, W, 3) RGB)."""
    src = np.asarray(source_rgb, np.float64).reshape(-1, 3)
    tgt = np.asarray(target_rgb, np.float64).reshape(-1, 3)
    mu_s, mu_t = src.mean(0), tgt.mean(0)
    cov_s = np.cov(src, rowvar=False) + 1e-3 * np.eye(3)
    cov_t = np.cov(tgt, rowvar=False) + 1e-3 * np.eye(3)
    A = _sqrtm(cov_t) @ np.linalg.inv(_sqrtm(cov_s))                      # (CC2)
    out = (src - mu_s) @ A.T + mu_t
    return np.clip(out, 0, 255).reshape(np.shape(source_rgb)).astype(np.float32)


def _sqrtm(c):
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.maximum(w, 0))) @ v.T
