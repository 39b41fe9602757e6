#!/usr/bin/env bash
# Every collide mode on every fetched photo, on the ViT-S/14 and on PP-OCR cls; one JSON report
# and the wall time of the whole command per run, then the README's Markdown table
# (scripts/photo-table.py). Needs scripts/fetch-models.sh and `cargo build` first.
# Usage: scripts/photo-table.sh [OUT_DIR]   (default: target/photo-table)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/photo-table}"
bin=target/debug/blindspot
cache=.cache/blindspot
mkdir -p "$out"
: > "$out/times.txt"
photos=(chelsea.png coffee.png astronaut.png camera.png coins.png motorcycle_left.png
  hubble_deep_field.jpg retina.jpg ihc.png rocket.jpg home.jpg building.jpg messi5.jpg
  starry_night.jpg HappyFish.jpg smarties.png stuff.jpg)
for model in vit ppocr; do
  case $model in
    vit) args=("$cache/vit_s_focus.onnx" --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225) ;;
    ppocr) args=("$cache/ppocr_cls.onnx" --input-shape 1,3,48,192 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5) ;;
  esac
  for photo in "${photos[@]}"; do
    for mode in random far target target-l1; do
      run="$out/$model-$photo-$mode"
      case $mode in
        target-l1) search=(--mode target --distance l1) ;;
        *) search=(--mode "$mode") ;;
      esac
      start=$(date +%s.%N)
      rc=0
      "$bin" collide "${args[@]}" "$cache/$photo" --target "$cache/astronaut.png" "${search[@]}" \
        --count 1 --seed 1 --quiet --json --out "$run" > "$run.json" 2> "$run.err" || rc=$?
      end=$(date +%s.%N)
      echo "$model $photo $mode $rc $(python3 -c "print($end - $start)")" >> "$out/times.txt"
    done
  done
done
python3 scripts/photo-table.py "$out"
