#!/usr/bin/env python3
"""Reference PSNR and SSIM from scikit-image for the pairs under tests/data/compare/.

Run once from the repository root (needs `pip install scikit-image==0.26.0`):

    python3 scripts/ssim-reference.py

It makes the colour pair from a crop of docs/explain-vit-gradcam.png, and writes
tests/data/ssim_reference.json, which tests/compare.rs checks blindspot's `similarity::psnr`
and `similarity::ssim` against.

The collision pair was written by
    blindspot collide models/mlp.onnx models/digits/3-1900.png --mode far --count 1 --seed 0 --out OUT
and copied as tests/data/compare/mlp-3-1900-{original,far}.npy (OUT/original.npy, OUT/collide-000.npy).

Images are read as blindspot reads them: an 8-bit value k becomes float32(k) / float32(255)
(the `image` crate's conversion), widened to float64; a .npy tensor [1, C, H, W] is taken as is.
"""
import json
import pathlib

import numpy as np
import skimage
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "compare"


def read_png(path):
    a = np.asarray(Image.open(path))
    if a.ndim == 3:
        a = a[..., :3]
    else:
        a = a[..., None]
    return (a.astype(np.float32) / np.float32(255)).astype(np.float64)


def read_npy(path):
    t = np.load(path).astype(np.float64)
    assert t.ndim == 4 and t.shape[0] == 1
    return np.transpose(t[0], (1, 2, 0))  # NCHW -> H x W x C


def read(path):
    return read_npy(path) if path.suffix == ".npy" else read_png(path)


def make_colour_pair():
    """A 48x40 colour crop, the crop with Gaussian noise, and the crop shifted by 2 pixels."""
    src = Image.open(ROOT / "docs" / "explain-vit-gradcam.png").convert("RGB")
    crop = src.crop((20, 20, 212, 180)).resize((48, 40), Image.BILINEAR)
    a = np.asarray(crop)
    rng = np.random.default_rng(0)
    noisy = np.clip(a.astype(np.float64) + rng.normal(0, 20, a.shape), 0, 255).round().astype(np.uint8)
    shifted = np.roll(a, (2, 2), axis=(0, 1))
    Image.fromarray(a).save(DATA / "cat.png")
    Image.fromarray(noisy).save(DATA / "cat-noisy.png")
    Image.fromarray(shifted).save(DATA / "cat-shifted.png")


PAIRS = [
    ("models/digits/3-1900.png", "models/digits/3-1901.png"),
    ("models/digits/3-1900.png", "models/digits/8-4400.png"),
    ("tests/data/compare/mlp-3-1900-original.npy", "tests/data/compare/mlp-3-1900-far.npy"),
    ("tests/data/compare/cat.png", "tests/data/compare/cat-noisy.png"),
    ("tests/data/compare/cat.png", "tests/data/compare/cat-shifted.png"),
]


def main():
    DATA.mkdir(parents=True, exist_ok=True)
    make_colour_pair()
    rows = []
    for a, b in PAIRS:
        x, y = read(ROOT / a), read(ROOT / b)
        assert x.shape == y.shape, (a, b, x.shape, y.shape)
        ssim = structural_similarity(
            x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
        )
        psnr = peak_signal_noise_ratio(x, y, data_range=1)
        rows.append({"a": a, "b": b, "shape": list(x.shape), "psnr": float(psnr), "ssim": float(ssim)})
        print(f"{a} vs {b}: PSNR {psnr:.6f} dB, SSIM {ssim:.6f}")
    out = {"generator": "scripts/ssim-reference.py", "scikit_image": skimage.__version__, "pairs": rows}
    (ROOT / "tests" / "data" / "ssim_reference.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
