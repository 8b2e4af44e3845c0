#!/usr/bin/env bash
# Does skipping CREPE on silent frames (--skip_silent_db -70: f0 0 and confidence 0 there, where
# a dataset otherwise holds CREPE's reading of silence) cost a trained model anything?
#
#   bash bench/skip_silent_training.sh [WORK_DIR] [STEPS]
#
# The violin takes of ../shared/corpus/train/ (6 files, 118 s; a local measurement, nothing is
# shipped from it) are prepared twice with the same CREPE path, with and without the skip, the
# same files held out (--split_by file); tiny_instrument.gin is trained on each with the same seed
# and batch; each model is evaluated on both eval splits (the same audio; only the silent
# frames' f0 and confidence differ). Prints one line per (model, eval data).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-/tmp/skip_silent_training}"
STEPS="${2:-400}"
BEAM="$REPO/.venv/bin/ddsp-beam"
CORPUS="$REPO/../shared/corpus/train/violin"
CREPE=(--crepe_model cascade-octave --precision bfloat16 --f0_rate 100)
mkdir -p "$WORK"
for v in kept skipped; do
  extra=()
  [ "$v" = skipped ] && extra=(--skip_silent_db -70)
  [ -e "$WORK/data-$v/dataset.json" ] || "$BEAM" prepare --input "$CORPUS/*.wav" \
      --output "$WORK/data-$v" "${CREPE[@]}" "${extra[@]}" --eval_fraction 0.2 --split_by file \
      --no_progress
  "$BEAM" train --data "$WORK/data-$v" --model_dir "$WORK/model-$v" \
      --gin_file tiny_instrument.gin --gin_param train.batch_size=8 --steps "$STEPS" --seed 0 \
      --checkpoint_every "$STEPS" --no-eval --no_progress
done
for m in kept skipped; do
  for d in kept skipped; do
    line=$("$BEAM" eval --data "$WORK/data-$d" --model_dir "$WORK/model-$m" --max_examples 64 \
           2>&1 | grep '^\[eval\]')
    echo "model trained with silent frames $m, eval data with silent frames $d: $line"
  done
done
