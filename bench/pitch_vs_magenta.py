"""The default CREPE path over the whole shared corpus, next to magenta's prepare in the same run.

    .venv/bin/python -m bench.pitch_vs_magenta [--levers CONFIGS] [--out FILE]

Over every clean file of ../shared/corpus/{train,transfer,range} (26 files, 445 s; wav, flac
and mp3, 16 and 44.1 kHz), in this order, each step's figures written to --out as it ends (a
run stopped early keeps what it measured):

1. `ddsp-beam prepare` with its defaults (the octave-guided CREPE cascade, bfloat16, f0 at 100
   frames/s; or each CREPE path of --configs), one command over the folders: wall time,
   start-up included.
2. magenta ddsp 3.7.0's `ddsp_prepare_tfrecord` (the side venv, bench/make_magenta_venv.sh)
   with its default flags written out (as ../shared/tools/magenta/magenta_prepare_each.sh
   writes them), **one** run over the same files, so its start-up counts once: wall time.
   Its records do not say which file a window came from, so its pitch accuracy is not scored
   here (bench/vs_magenta.py scores it per file on train/; the parity mode,
   `--crepe_model full --precision float32 --f0_rate 250`, is its model and rate).
3. Raw pitch accuracy (50 cents, pooled over frames) per folder of the default and of each
   lever in --levers (bench.pitch_levers.run_config: the features code of prepare, in this
   process, files decoded once up front; its compute seconds per audio second are comparable
   between the levers of this run).
"""

import argparse
import datetime
import os
import sys
import tempfile

from bench import pitch_levers
from bench import run as bench_run
from ddsp_core import audio as audio_lib
from ddsp_core import crepe as crepe_lib
from ddsp_core import features as features_lib

DEFAULT_CONFIG = f"{crepe_lib.DEFAULT_MODEL}/{crepe_lib.DEFAULT_PRECISION}/{features_lib.DEFAULT_F0_RATE}"
# Scored after the default: its opt-in silence skip, the cascade it replaced, f0 at 50 frames/s.
DEFAULT_LEVERS = (f"{DEFAULT_CONFIG}/-70,{crepe_lib.CASCADE}/{crepe_lib.DEFAULT_PRECISION}/"
                  f"{features_lib.DEFAULT_F0_RATE},"
                  f"{crepe_lib.DEFAULT_MODEL}/{crepe_lib.DEFAULT_PRECISION}/50")
MAGENTA_PREPARE = os.path.join(os.path.dirname(bench_run.MAGENTA_PY), "ddsp_prepare_tfrecord")
# ddsp 3.7.0's defaults, written out (the same as magenta_prepare_each.sh).
MAGENTA_FLAGS = ["--num_shards=1", "--sample_rate=16000", "--frame_rate=250", "--example_secs=4",
                 "--hop_secs=1", "--chunk_secs=20", "--nocenter", "--viterbi",
                 "--pipeline_options=--runner=DirectRunner"]


def ours_prepare(files, work, config=DEFAULT_CONFIG, name="ours"):
  """`ddsp-beam prepare` over the corpus folders, one command, with the CREPE path `config`
  (bench.pitch_levers' syntax; the default is prepare's own)."""
  inputs = []
  for f in files:
    inputs += ["--input", f["audio"]]
  c = pitch_levers.Config.parse(config)
  crepe = ["--crepe_model", c.model, "--precision", c.precision, "--f0_rate", str(c.f0_rate)]
  if c.skip_silent_db is not None:
    crepe += ["--skip_silent_db", f"{c.skip_silent_db:g}"]
  return bench_run.timed([bench_run.DDSP_BEAM, "prepare", *inputs, *crepe, "--output",
                          os.path.join(work, name), "--no_progress"])


def magenta_prepare(files, work):
  """magenta's ddsp_prepare_tfrecord, default flags, one run over every file."""
  patterns = ",".join(f["audio"] for f in files)
  assert all("," not in f["audio"] and "*" not in f["audio"] for f in files)
  return bench_run.timed([MAGENTA_PREPARE, f"--input_audio_filepatterns={patterns}",
                          f"--output_tfrecord_path={os.path.join(work, 'magenta', 'all.tfrecord')}",
                          *MAGENTA_FLAGS])


def report(files, seconds, prepares, magenta, levers, argv=()) -> str:
  """`prepares`: [(config, (wall s, peak RSS MB))], ddsp-beam's prepare per CREPE path."""
  folders = sorted({f["folder"] for f in files})
  where = ("the whole shared corpus" if set(folders) == set(pitch_levers.FOLDERS)
           else " + ".join(f"{folder}/" for folder in folders))
  command = " ".join(["python -m bench.pitch_vs_magenta", *argv])
  lines = [f"# The default CREPE path vs magenta's prepare over {where}, "
           f"{datetime.date.today().isoformat()}", "",
           f"`{command}` on {bench_run.cpu_model()}, {os.cpu_count()} cores: "
           f"{len(files)} files of {', '.join(sorted({f['folder'] + '/' for f in files}))}, "
           f"{seconds:.1f} s of audio, every "
           "figure from this one run.", "",
           "| prepare, one command over all files | wall s | s per audio s | peak RSS MB | "
           "magenta's wall / this |", "|---|---:|---:|---:|---:|"]
  m_wall = magenta[0] if magenta else None
  for config, prepare in prepares:
    ratio = f"**{m_wall / prepare[0]:.1f}x**" if m_wall else "-"
    what = "defaults" if config == DEFAULT_CONFIG else "--configs"
    lines.append(f"| ddsp-beam prepare, {what} ({config.replace('/', ', ')}) | "
                 f"{prepare[0]:.0f} | {prepare[0] / seconds:.3f} | {prepare[1]:.0f} | {ratio} |")
  if magenta:
    lines.append(f"| magenta ddsp 3.7.0 ddsp_prepare_tfrecord, default flags (full, float32, "
                 f"250), one run | {m_wall:.0f} | {m_wall / seconds:.3f} | {magenta[1]:.0f} | 1x |")
  if levers:
    lines += ["", "Pitch accuracy per folder (bench.pitch_levers: features computed in process, "
              "decoding excluded; compute times compare between these rows only):", "",
              pitch_levers.markdown(levers, seconds, len(files))]
  return "\n".join(lines) + "\n"


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--configs", default=DEFAULT_CONFIG,
                  help="comma-separated CREPE paths for prepare, each MODEL/PRECISION/F0_RATE"
                  "[/SKIP_SILENT_DB], each its own timed run (default: prepare's defaults)")
  ap.add_argument("--levers", default=DEFAULT_LEVERS,
                  help="configs (bench.pitch_levers' syntax) scored after the default")
  ap.add_argument("--limit", type=int, default=0, help="only the first N files (a smoke run)")
  ap.add_argument("--folders", default=",".join(pitch_levers.FOLDERS),
                  help="comma-separated corpus folders (default all three)")
  ap.add_argument("--no_score", action="store_true",
                  help="time the two prepares only (no per-folder pitch accuracy)")
  ap.add_argument("--keep", help="keep the work folder (the records) here")
  ap.add_argument("--out", default=os.path.join(bench_run.REPO, "bench", "results",
                                                f"{datetime.date.today().isoformat()}-pitch.md"))
  args = ap.parse_args(argv)
  if not os.path.exists(MAGENTA_PREPARE):
    sys.exit("the magenta side venv is missing: bash bench/make_magenta_venv.sh")
  files = pitch_levers.corpus_files(bench_run.CORPUS)
  files = [f for f in files if f["folder"] in args.folders.split(",")]
  files = files[:args.limit] if args.limit else files
  seconds = sum(bench_run.sf.info(f["audio"]).duration for f in files)
  configs = [c for c in args.configs.split(",") if c]
  state = {"prepares": [], "magenta": None, "levers": []}

  def write():
    text = report(files, seconds, state["prepares"], state["magenta"], state["levers"],
                  sys.argv[1:] if argv is None else argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
      f.write(text)
    return text

  with tempfile.TemporaryDirectory() as scratch:
    work = args.keep or scratch
    os.makedirs(work, exist_ok=True)
    for i, config in enumerate(configs):
      state["prepares"].append((config, ours_prepare(files, work, config, f"ours{i}")))
      print(f"ddsp-beam prepare {config}: {state['prepares'][-1][1][0]:.0f} s", flush=True)
      write()
    state["magenta"] = magenta_prepare(files, work)
    print(f"magenta prepare: {state['magenta'][0]:.0f} s", flush=True)
    write()
  if args.no_score:
    return 0
  scorer = pitch_levers.load_score_f0(bench_run.CORPUS)
  for f in files:
    f["pcm"], _ = audio_lib.load_audio(f["audio"])
  for text in configs + [c for c in args.levers.split(",") if c]:
    result = pitch_levers.run_config(pitch_levers.Config.parse(text), files, scorer)
    state["levers"].append(result)
    print(f"  {result['config']}: all {100 * result['by_folder']['all']['RPA']:.2f}%", flush=True)
    write()
  print(write())
  return 0


if __name__ == "__main__":
  sys.exit(main())
