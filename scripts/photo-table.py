"""The README's table from scripts/photo-table.sh's runs: per model and photo, every mode's L2,
PSNR and time, far mode's share of the LP bound, target mode's closeness in L2 (PSNR) and in L1
(mean |z − t|, pixel units), blocks without room, and the largest output deviation of a collision
beside the smallest of its controls."""
import json
import sys

out = sys.argv[1]
runs = {}
for line in open(f"{out}/times.txt"):
    model, photo, mode, rc, seconds = line.split()
    runs[(model, photo, mode)] = (int(rc), float(seconds))
for model, title in [("vit", "ViT-S/14 (224×224)"), ("ppocr", "PP-OCR cls (192×48)")]:
    print(f"\n**{title}**\n")
    print("| photo | random: L2 / PSNR / s | far: L2 / PSNR / % of LP bound / s | target: PSNR to target / s "
          "| target, l1: mean abs. to target (l2's) / s | blocks without room | outputs rel. (max) | control rel. (min) |")
    print("|---|---|---|---|---|---|---|---|")
    photos = []
    for (m, p, _) in runs:
        if m == model and p not in photos:
            photos.append(p)
    for photo in photos:
        row, without_room, outputs, controls = [photo], [], [], []
        l2_mean_abs = None
        for mode in ["random", "far", "target", "target-l1"]:
            rc, seconds = runs[(model, photo, mode)]
            if rc != 0:
                lines = open(f"{out}/{model}-{photo}-{mode}.err").read().strip().splitlines()
                row.append(f"exit {rc}: {lines[-1] if lines else ''}")
                continue
            c = json.load(open(f"{out}/{model}-{photo}-{mode}.json"))["collisions"][0]
            without_room.append(str(c["blocks_without_room"]))
            outputs.append(max(o["rel_diff"] for o in c["outputs"]))
            controls.append(min(o["rel_diff"] for o in c["control"]["outputs"]))
            if mode == "random":
                row.append(f'{c["l2"]:.1f} / {c["psnr_to_original"]:.1f} dB / {seconds:.1f}')
            elif mode == "far":
                share = 100 * c["far_corner_reached"] / c["far_corner_bound"]
                row.append(f'{c["l2"]:.1f} / {c["psnr_to_original"]:.1f} dB / {share:.1f} % / {seconds:.1f}')
            elif mode == "target-l1":
                shown = f'{c["mean_abs_to_target"]:.4f}'
                if l2_mean_abs is not None:
                    shown += f" ({l2_mean_abs:.4f})"
                row.append(f"{shown} / {seconds:.1f}")
            else:
                l2_mean_abs = c["mean_abs_to_target"]
                # The target is astronaut.png: its own collision reaches it exactly.
                psnr = c["psnr_to_target"]
                shown = f"{psnr:.2f} dB" if psnr is not None else "∞ (its own target)"
                row.append(f"{shown} / {seconds:.1f}")
        row.append(" / ".join(without_room) or "-")
        row.append(f"{max(outputs):.1e}" if outputs else "-")
        row.append(f"{min(controls):.1e}" if controls else "-")
        print("| " + " | ".join(row) + " |")
