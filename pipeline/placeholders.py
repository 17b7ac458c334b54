"""Image placeholders a page shows while the real image loads: BlurHash and ThumbHash strings,
encoded here from a small sRGB(A) copy of the source (numpy arrays, height x width x bands).

Both follow their reference encoders exactly (woltapp/blurhash's TypeScript, evanw/thumbhash's
JavaScript, whose Math.round rounds halves up); the tests hold them to the PyPI ports' output.
"""

from __future__ import annotations

import base64
import math

import numpy as np

__all__ = ["blurhash", "thumbhash"]

_B83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def _round(x: float) -> int:
    return math.floor(x + 0.5)  # JavaScript's Math.round


def _base83(value: int, length: int) -> str:
    return "".join(_B83[(value // 83 ** (length - 1 - i)) % 83] for i in range(length))


def _to_linear(srgb: np.ndarray) -> np.ndarray:
    v = srgb / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _to_srgb(linear: float) -> int:
    v = min(1.0, max(0.0, linear))
    return int(v * 12.92 * 255 + 0.5) if v <= 0.0031308 else int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def blurhash(rgb: np.ndarray, x_components: int = 4, y_components: int = 3) -> str:
    """BlurHash of an sRGB image (alpha, if any, ignored). Encode a small copy (32 px is plenty):
    the cost is pixels x components."""
    height, width = rgb.shape[:2]
    linear = _to_linear(rgb[..., :3].astype(np.float64))
    factors = []
    for j in range(y_components):
        fy = np.cos(math.pi * j * np.arange(height) / height)
        for i in range(x_components):
            fx = np.cos(math.pi * i * np.arange(width) / width)
            basis = fy[:, None] * fx[None, :]
            norm = 1 if i == j == 0 else 2
            factors.append(norm * (basis[..., None] * linear).sum(axis=(0, 1)) / (width * height))
    dc, ac = factors[0], factors[1:]
    out = _base83((x_components - 1) + (y_components - 1) * 9, 1)
    if ac:
        quantised = max(0, min(82, math.floor(max(float(np.abs(a).max()) for a in ac) * 166 - 0.5)))
        maximum = (quantised + 1) / 166
        out += _base83(quantised, 1)
    else:
        maximum = 1.0
        out += _base83(0, 1)
    out += _base83((_to_srgb(dc[0]) << 16) + (_to_srgb(dc[1]) << 8) + _to_srgb(dc[2]), 4)
    for a in ac:
        q = [max(0, min(18, math.floor(math.copysign(abs(c / maximum) ** 0.5, c) * 9 + 9.5))) for c in a]
        out += _base83(q[0] * 19 * 19 + q[1] * 19 + q[2], 2)
    return out


def thumbhash(rgba: np.ndarray) -> str:
    """ThumbHash (base64) of an sRGB image at most 100 x 100 px, alpha included when present."""
    h, w = rgba.shape[:2]
    if w > 100 or h > 100:
        raise ValueError(f"{w}x{h} does not fit in 100x100")
    px = rgba.astype(np.float64)
    if px.shape[2] == 3:
        px = np.concatenate([px, np.full((h, w, 1), 255.0)], axis=2)
    alpha = px[..., 3] / 255
    total = alpha.sum()
    avg = (alpha[..., None] / 255 * px[..., :3]).reshape(-1, 3).sum(axis=0)
    if total:
        avg = avg / total
    has_alpha = total < w * h
    l_limit = 5 if has_alpha else 7  # fewer luminance bits when alpha needs room
    lx = max(1, _round(l_limit * w / max(w, h)))
    ly = max(1, _round(l_limit * h / max(w, h)))
    # composite atop the average colour, then to luminance, yellow-blue, red-green
    rgb = avg * (1 - alpha[..., None]) + alpha[..., None] / 255 * px[..., :3]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    channels = [(r + g + b) / 3, (r + g) / 2 - b, r - g, alpha]

    def encode(channel: np.ndarray, nx: int, ny: int) -> tuple[float, list[float], float]:
        dc, ac, scale = 0.0, [], 0.0
        for cy in range(ny):
            fy = np.cos(math.pi / h * cy * (np.arange(h) + 0.5))
            cx = 0
            while cx * ny < nx * (ny - cy):
                fx = np.cos(math.pi / w * cx * (np.arange(w) + 0.5))
                f = float((channel * fy[:, None] * fx[None, :]).sum()) / (w * h)
                if cx or cy:
                    ac.append(f)
                    scale = max(scale, abs(f))
                else:
                    dc = f
                cx += 1
        if scale:
            ac = [0.5 + 0.5 / scale * f for f in ac]
        return dc, ac, scale

    l_dc, l_ac, l_scale = encode(channels[0], max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = encode(channels[1], 3, 3)
    q_dc, q_ac, q_scale = encode(channels[2], 3, 3)
    landscape = w > h
    header24 = (
        _round(63 * l_dc)
        | (_round(31.5 + 31.5 * p_dc) << 6)
        | (_round(31.5 + 31.5 * q_dc) << 12)
        | (_round(31 * l_scale) << 18)
        | (int(has_alpha) << 23)
    )
    header16 = (ly if landscape else lx) | (_round(63 * p_scale) << 3) | (_round(63 * q_scale) << 9)
    header16 |= int(landscape) << 15
    out = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    acs = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = encode(channels[3], 5, 5)
        out.append(_round(15 * a_dc) | (_round(15 * a_scale) << 4))
        acs.append(a_ac)
    start, index = len(out), 0
    out += [0] * ((sum(len(a) for a in acs) + 1) // 2)
    for ac in acs:
        for f in ac:
            out[start + (index >> 1)] |= _round(15 * f) << ((index & 1) << 2)
            index += 1
    return base64.b64encode(bytes(out)).decode("ascii")
