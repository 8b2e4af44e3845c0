"""The `ddsp-beam` command line. Thin: parse arguments, call a library function.

Exit status everywhere: 0 when every input succeeded, 1 when some inputs failed
(each is reported), 2 when the command itself could not run.
"""

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import tempfile

from jobs import cli_flags

EXIT_OK, EXIT_SOME_FAILED, EXIT_RUN_FAILED = 0, 1, 2
# Kept here (not imported from ddsp_core.crepe) so that `--help` starts without TensorFlow.
CREPE_DEFAULT = "cascade-octave"
PRECISION_DEFAULT = "bfloat16"
F0_RATE_DEFAULT = 100
CREPE_CHOICES = ["tiny", "small", "medium", "large", "full", "cascade", "cascade-octave"]
VERBOSE_HELP = "show TensorFlow's start-up lines and INFO logs (hidden by default)"
CREPE_HELP = ("CREPE model (default cascade-octave: small on every frame, then full, magenta's "
              "model, on the frames small is unsure of and on a 40 ms grid of those it reads "
              "below 400 Hz, small's octave corrected from that grid between, quiet frames (<= -70 "
              "dB) left to small; cascade: full on "
              "every such low frame, slower on low instruments; full alone is magenta's; tiny "
              "and small alone are faster but read low instruments an octave high; medium and "
              "large need the crepe-medium or crepe-large extra)")


def _add_skip_silent_arg(p) -> None:
  p.add_argument("--skip_silent_db", type=float, default=None, metavar="DB",
                 help="a speed lever, off by default: run CREPE only on frames louder than DB "
                 "(A-weighted, e.g. -70); the others get f0 0 and confidence 0")


def _add_crepe_args(p) -> None:
  """--crepe_model, --precision, --f0_rate: the default is the measured fast path (the
  octave-guided cascade in bfloat16, f0 at 100 frames/s); `--crepe_model full --precision
  float32 --f0_rate 250` is magenta's (parity)."""
  p.add_argument("--crepe_model", default=CREPE_DEFAULT, choices=CREPE_CHOICES, help=CREPE_HELP)
  p.add_argument("--precision", default=PRECISION_DEFAULT, choices=["float32", "bfloat16"],
                 help="CREPE's convolutions in bfloat16 (default) or float32 (magenta's)")
  p.add_argument("--f0_rate", type=int, default=F0_RATE_DEFAULT,
                 help=f"run CREPE at this many frames/s and interpolate onto the frame grid "
                 f"(default {F0_RATE_DEFAULT}; 0: on every frame, at the frame rate)")


class _DropNoise(logging.Filter):
  """Drops start-up warnings that say nothing to a user of this tool."""
  NOISE = ("apitools not found",)

  def filter(self, record):
    return not any(n in record.getMessage() for n in self.NOISE)


_NOISE_FILTER = _DropNoise()
# A line of TensorFlow's C++ logging (absl's format, whose date and time read `0000 00:00:<Unix
# time>` before absl is initialised: `I0000 00:00:1796143016.390409   7457 port.cc:153] oneDNN
# custom operations are on...`), or absl's note before the first one.
_TF_LOG_LINE = re.compile(rb"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] "
                          rb"|WARNING: All log messages before absl::InitializeLog\(\) is called")


@contextlib.contextmanager
def _tf_log_lines_dropped():
  """Runs the block with fd 2 in a temporary file, then writes that to stderr without TF's log lines."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as tmp:
    os.dup2(tmp.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      tmp.seek(0)
      kept = [line for line in tmp.read().splitlines(keepends=True) if not _TF_LOG_LINE.match(line)]
      sys.stderr.write(b"".join(kept).decode("utf-8", "replace"))
      sys.stderr.flush()


def _quiet_startup(verbose: bool, imports_tensorflow: bool = True):
  """TensorFlow's start-up lines and INFO logs: all of them when `verbose`, else none.

  TF_CPP_MIN_LOG_LEVEL has to be set before TensorFlow is imported, and it does
  not reach every line: each of TensorFlow's shared libraries has its own copy of
  absl logging, and some write while they load (`I0000 ... port.cc:153] oneDNN
  custom operations are on`). So TensorFlow is imported here, for the subcommands
  that use it, with fd 2 captured, and what the import wrote is passed on
  without TensorFlow's log lines.
  """
  if verbose:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    logging.getLogger().removeFilter(_NOISE_FILTER)
    logging.basicConfig(level=logging.INFO)
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # a user's own setting wins
  if imports_tensorflow and "tensorflow" not in sys.modules:
    with _tf_log_lines_dropped():
      import tensorflow  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import


def _add_features_parser(sub):
  p = sub.add_parser("features", help="per-frame f0, confidence and loudness to Parquet",
                     description="Computes f0 (CREPE), confidence and A-weighted loudness "
                     "per frame for audio files and writes them to a Parquet file. Files "
                     "that cannot be used are listed with their reason in "
                     "<output stem>.errors.parquet; the others are processed.")
  p.add_argument("inputs", nargs="+", help="audio files, glob patterns ('**' recurses) or directories")
  p.add_argument("-o", "--output", required=True, help="output Parquet file")
  _add_crepe_args(p)
  _add_skip_silent_arg(p)
  p.add_argument("--frame_rate", type=int, default=250, help="frames per second (default 250)")
  p.add_argument("--viterbi", action=argparse.BooleanOptionalAction, default=True,
                 help="Viterbi-smooth f0 (default on)")
  p.add_argument("--padding", default="center", choices=["center", "same"],
                 help="frame alignment: 'center' (frame i centred at i/frame_rate s) or "
                 "'same' (frame i starts there; magenta's ddsp_prepare_tfrecord default)")
  p.add_argument("--plots", metavar="DIR", help="write one PNG per file here")
  p.add_argument("--no_progress", action="store_true", help="no progress bar")
  p.set_defaults(func=_cmd_features)


def _cmd_features(args, unused_beam_args):
  from jobs import features  # pylint: disable=g-import-not-at-top
  result = features.run_features(
      args.inputs, args.output, crepe_model=args.crepe_model, frame_rate=args.frame_rate,
      viterbi=args.viterbi, padding=args.padding, precision=args.precision,
      plots_dir=args.plots, progress=not args.no_progress, f0_rate=args.f0_rate or None,
      skip_silent_db=args.skip_silent_db)
  for err in result.errors:
    print(f"FAILED [{err['error_type']}] {err['message']}", file=sys.stderr)
  print(f"{len(result.files_ok)} file(s) ok, {len(result.errors)} failed; "
        f"{result.frames} frames from {result.audio_seconds:.1f} s of audio in "
        f"{result.wall_seconds:.1f} s -> {result.output}"
        + (f"; errors -> {result.errors_output}" if result.errors else ""))
  return result.exit_code


def _add_prepare_parser(sub):
  p = sub.add_parser(
      "prepare", help="recordings -> TFRecord dataset, statistics and Parquet reports (Beam)",
      description="Turns recordings into a DDSP training dataset with an Apache Beam pipeline. "
      "Beam's PipelineOptions flags are passed to Beam (--runner, --direct_num_workers, "
      "--direct_running_mode, --project, ...; any other flag is refused); the default runner is "
      "the DirectRunner.")
  p.add_argument("--input", action="append", required=True,
                 help="glob pattern, file or directory; repeat for more")
  p.add_argument("--output", required=True, help="dataset folder (replaced when the run succeeds)")
  p.add_argument("--example_secs", type=float, default=4.0)
  p.add_argument("--hop_secs", type=float, default=1.0)
  p.add_argument("--frame_rate", type=int, default=250)
  p.add_argument("--sample_rate", type=int, default=16000, help="rate of the `audio` feature")
  p.add_argument("--padding", default="same", choices=["same", "center"],
                 help="frame alignment; 'same' is magenta's default (1000 frames per 4 s)")
  p.add_argument("--eval_fraction", type=float, default=0.0)
  p.add_argument("--split_by", default="file", choices=["file", "window"])
  _add_crepe_args(p)
  _add_skip_silent_arg(p)
  p.add_argument("--viterbi", action=argparse.BooleanOptionalAction, default=True)
  p.add_argument("--chunk_secs", type=int, default=20)
  p.add_argument("--min_secs", type=float, default=1.0,
                 help="shorter recordings are reported as skipped")
  p.add_argument("--silence_db", type=float, default=-80.0,
                 help="windows whose loudness never exceeds this are dropped")
  p.add_argument("--num_shards", type=int, default=0, help="TFRecord shards per split (0: runner decides)")
  p.add_argument("--write_magenta_pickle", action="store_true",
                 help="also write dataset_statistics.pkl in magenta's layout (for its Colab)")
  p.add_argument("--cache_dir", help="keep each recording's results here (by content and "
                 "settings) and reuse them in later runs instead of computing them again")
  p.add_argument("--no_progress", action="store_true")
  p.set_defaults(func=_cmd_prepare, passes_beam_args=True)


def _cmd_prepare(args, beam_args):
  from pipelines import examples, prepare  # pylint: disable=g-import-not-at-top
  config = prepare.PrepareConfig(
      window=examples.WindowSpec(sample_rate=args.sample_rate, frame_rate=args.frame_rate,
                                 example_secs=args.example_secs, hop_secs=args.hop_secs,
                                 padding=args.padding),
      crepe_model=args.crepe_model, viterbi=args.viterbi, precision=args.precision,
      f0_rate=args.f0_rate or None, skip_silent_db=args.skip_silent_db,
      eval_fraction=args.eval_fraction, split_by=args.split_by,
      chunk_secs=args.chunk_secs,
      min_secs=args.min_secs, silence_db=args.silence_db,
      write_magenta_pickle=args.write_magenta_pickle, progress=not args.no_progress)
  result = prepare.run_prepare(args.input, args.output, config, beam_args, args.num_shards,
                               cache_dir=args.cache_dir)
  for err in sorted(result.errors, key=lambda e: e["path"]):
    print(f"FAILED [{err['error_type']}] {err['message']}", file=sys.stderr)
  c = result.info["counts"]
  print(f"{c['files_ok']} file(s) ok, {c['files_skipped']} skipped, {c['files_failed']} failed; "
        f"windows: {c['windows_train']} train, {c['windows_eval']} eval, "
        f"{c['windows_dropped_silent']} silent dropped; {c['audio_seconds']:.1f} s of audio in "
        f"{result.info['wall_seconds']:.1f} s -> {result.output}")
  return result.exit_code


def _add_tfrecord_flags(p):
  g = p.add_argument_group("TFRecords without dataset.json (magenta's TFRecordProvider defaults)")
  g.add_argument("--example_secs", type=float, default=4.0)
  g.add_argument("--sample_rate", type=int, default=16000)
  g.add_argument("--frame_rate", type=int, default=250)
  g.add_argument("--centered", action="store_true", help="features have example_secs*frame_rate+1 frames")
  g.add_argument("--eval_data", help="pattern of eval TFRecord files")


def _open_data(args):
  from jobs import train  # pylint: disable=g-import-not-at-top
  return train.open_data(args.data, args.example_secs, args.sample_rate, args.frame_rate,
                         args.centered, args.eval_data)


def _add_train_parsers(sub):
  p = sub.add_parser("train", help="train a DDSP autoencoder on a prepared dataset (resumable)",
                     description="Trains on DATA (a `ddsp-beam prepare` output; its dataset.json "
                     "gives every setting) into MODEL_DIR. Rerunning after an interruption resumes "
                     "from the latest checkpoint.")
  p.add_argument("--data", required=True,
                 help="prepared dataset folder, or a pattern of TFRecord files without a "
                 "dataset.json (e.g. magenta's ddsp_prepare_tfrecord output; see --example_secs)")
  _add_tfrecord_flags(p)
  p.add_argument("--model_dir", required=True)
  p.add_argument("--gin_file", action="append", default=None,
                 help="gin file (built-in: solo_instrument.gin, tiny_instrument.gin); repeatable")
  p.add_argument("--gin_param", action="append", default=[],
                 help="gin binding, e.g. 'train.batch_size=16'; repeatable")
  p.add_argument("--steps", type=int, default=30000, help="total training steps")
  p.add_argument("--checkpoint_every", type=int, default=300)
  p.add_argument("--keep_checkpoints", type=int, default=3)
  p.add_argument("--log_every", type=int, default=50)
  p.add_argument("--seed", type=int, default=0,
                 help="seeds weights, shuffling and noise: the same command gives the same "
                 "loss curve (default 0)")
  p.add_argument("--jit_compile", action=argparse.BooleanOptionalAction, default=False,
                 help="compile the training step with XLA (default off: slower than the graph "
                 "step on the CPUs measured; try it on a GPU)")
  p.add_argument("--precision", choices=("float32", "bfloat16"), default=None,
                 help="the decoder's matrix products (default: the gin files', float32)")
  p.add_argument("--eval", action=argparse.BooleanOptionalAction, default=True,
                 help="evaluate on the eval split at the end (default on)")
  p.add_argument("--eval_crepe_model", default="tiny")
  p.add_argument("--no_progress", action="store_true")
  p.set_defaults(func=_cmd_train)
  e = sub.add_parser("eval", help="magenta's F0/loudness metrics of a model on eval windows")
  e.add_argument("--data", required=True, help="as for train")
  _add_tfrecord_flags(e)
  e.add_argument("--model_dir", required=True)
  e.add_argument("--split", default="eval")
  e.add_argument("--max_examples", type=int, default=64)
  e.add_argument("--crepe_model", default="tiny")
  e.set_defaults(func=_cmd_eval)
  x = sub.add_parser("export", help="SavedModel (features in, audio out) and a zip of a model dir")
  x.add_argument("--model_dir", required=True)
  x.add_argument("--output", help="SavedModel folder (default MODEL_DIR/export/saved_model)")
  x.add_argument("--zip", help="zip path (default MODEL_DIR/export/<name>.zip)")
  x.set_defaults(func=_cmd_export)


def _cmd_train(args, unused_beam_args):
  from jobs import train  # pylint: disable=g-import-not-at-top
  result = train.run_training(
      _open_data(args), args.model_dir, gin_files=args.gin_file or ["solo_instrument.gin"],
      gin_params=args.gin_param, steps=args.steps, checkpoint_every=args.checkpoint_every,
      keep_checkpoints=args.keep_checkpoints, log_every=args.log_every, seed=args.seed,
      progress=not args.no_progress, evaluate_at_end=args.eval,
      eval_crepe_model=args.eval_crepe_model, jit_compile=args.jit_compile,
      precision=args.precision)
  print(f"trained to step {result.step} (resumed from {result.resumed_from}) -> {result.model_dir}")
  return EXIT_OK


def _cmd_eval(args, unused_beam_args):
  from jobs import train  # pylint: disable=g-import-not-at-top
  summary = train.evaluate(args.model_dir, _open_data(args), args.split, crepe_model=args.crepe_model,
                           max_examples=args.max_examples)
  print(json.dumps(summary, indent=1))
  return EXIT_OK


def _cmd_export(args, unused_beam_args):
  from jobs import train  # pylint: disable=g-import-not-at-top
  out = train.export(args.model_dir, args.output, args.zip)
  print(f"step {out['step']}: SavedModel -> {out['saved_model']}; zip -> {out['zip']}")
  return EXIT_OK


def _add_transfer_parser(sub):
  p = sub.add_parser(
      "transfer", help="timbre transfer of whole corpora through trained models (Beam)",
      description="Transfers every input through every model. Batch: --input patterns and "
      "--output DIR (WAVs in DIR/<model>/..., report in DIR/reports/transfer.parquet, "
      "DIR/index.html). Single file: `ddsp-beam transfer one.wav --model M -o out.wav`. "
      "Beam's PipelineOptions flags go to Beam; any other flag is refused.")
  p.add_argument("files", nargs="*", help="input files (same as --input)")
  p.add_argument("--input", action="append", default=[], help="glob pattern, file or directory")
  p.add_argument("--model", action="append", required=True,
                 help="NAME=PATH or PATH: a model dir or a zip of one; repeatable")
  p.add_argument("--output", help="output folder (batch mode)")
  p.add_argument("-o", dest="output_wav", help="output WAV (single-file mode)")
  p.add_argument("--adjust", action=argparse.BooleanOptionalAction, default=True,
                 help="the Colab's automatic adjustments toward the model's dataset statistics")
  p.add_argument("--threshold", type=float, default=1.0, help="note detection threshold")
  p.add_argument("--quiet", type=float, default=20.0, help="dB to lower note-off frames")
  p.add_argument("--autotune", type=float, default=0.0, help="auto-tune amount, 0-1")
  p.add_argument("--chromatic", action="store_true", help="auto-tune to semitones, not a scale")
  p.add_argument("--pitch_shift", type=float, default=0.0, help="octaves, -2..2")
  p.add_argument("--loudness_shift", type=float, default=0.0, help="dB, -20..20")
  p.add_argument("--sample_rate_out", default="16000",
                 help="output rate in Hz, or 'input' for each input's own rate")
  _add_crepe_args(p)
  p.add_argument("--plots", action="store_true", help="a PNG per (file, model)")
  p.add_argument("--cache_dir", default=None, help="where model zips are extracted")
  p.set_defaults(func=_cmd_transfer, passes_beam_args=True)


def _cmd_transfer(args, beam_args):
  from pipelines import transfer  # pylint: disable=g-import-not-at-top
  config = transfer.TransferConfig(
      adjust=args.adjust, threshold=args.threshold, quiet=args.quiet, autotune=args.autotune,
      chromatic=args.chromatic, pitch_shift=args.pitch_shift, loudness_shift=args.loudness_shift,
      sample_rate_out=None if args.sample_rate_out == "input" else int(args.sample_rate_out),
      crepe_model=args.crepe_model, precision=args.precision, f0_rate=args.f0_rate or None,
      plots=args.plots, **({"cache_dir": args.cache_dir} if args.cache_dir else {}))
  patterns = list(args.files) + list(args.input)
  if args.output_wav:
    if len(patterns) != 1 or len(args.model) != 1 or beam_args:
      raise SystemExit("ddsp-beam transfer -o: give exactly one input file and one --model")
    row = transfer.transfer_single(patterns[0], args.model[0], args.output_wav, config)
    if row["status"] != "ok":
      print(f"FAILED [{row['error_type']}] {row['error_message']}", file=sys.stderr)
      return EXIT_SOME_FAILED
    print(f"{row['input_path']} -> {row['output_path']} (f0 error "
          f"{row['f0_error_cents_median']} cents, loudness L1 {row['loudness_l1_db']:.2f} dB)")
    return EXIT_OK
  if not args.output:
    raise SystemExit("ddsp-beam transfer: give --output DIR (or -o FILE for one input)")
  result = transfer.run_transfer(patterns, args.model, args.output, config, beam_args)
  for row in result.failed:
    print(f"FAILED [{row['error_type']}] {row['error_message']}", file=sys.stderr)
  print(f"{len(result.rows) - len(result.failed)} of {len(result.rows)} file/model pairs ok -> "
        f"{result.output} (report: reports/transfer.parquet, index.html)")
  return result.exit_code


def _add_import_parser(sub):
  p = sub.add_parser(
      "import-model", help="a magenta ddsp model (dir or Colab zip) -> a ddsp-beam model dir",
      description="Reads a model trained with magenta ddsp (ddsp_run or the Colab: "
      "operative_config-*.gin and ckpt-*, in a folder or a zip), checks that its architecture "
      "is one ddsp-beam implements (the solo-instrument autoencoder), copies its weights and "
      "writes a ddsp-beam model dir that transfer, export and train accept.")
  p.add_argument("source", help="magenta model dir or zip")
  p.add_argument("-o", "--output", required=True, help="ddsp-beam model dir to write")
  p.add_argument("--trust_pickle", action="store_true",
                 help="also convert magenta's dataset_statistics.pkl (needed for transfer's "
                 "automatic adjustments). A pickle can run code when loaded: only pass this for "
                 "a file you trust; even then only numpy arrays, numbers, containers and the "
                 "quantile transformer's fields are read")
  p.set_defaults(func=_cmd_import)


def _cmd_import(args, unused_beam_args):
  from jobs import import_model  # pylint: disable=g-import-not-at-top
  result = import_model.import_model(args.source, args.output, trust_pickle=args.trust_pickle)
  print(f"imported {args.source} (step {result.step}, {result.weights} weights, "
        f"{result.n_parameters:,} parameters) -> {result.model_dir}; dataset statistics: "
        f"{result.statistics}")
  if result.statistics.startswith("not read"):
    print("note: without dataset_statistics.json, transfer runs without the automatic "
          "adjustments; pass --trust_pickle if you trust the file", file=sys.stderr)
  return EXIT_OK


def _add_corpus_parsers(sub):
  p = sub.add_parser(
      "run", help="the corpus job: prepare -> train -> transfer, incrementally (for schedulers)",
      description="Runs the corpus job described by a TOML config (see the README): prepares "
      "the datasets, trains the models and transfers the transfer inputs, doing only what "
      "changed since the last run. Exit status 0 all good, 1 some inputs failed (listed), "
      "2 the run failed. Beam's PipelineOptions flags go to Beam (after the config's "
      "beam_args); any other flag is refused.")
  p.add_argument("config", help="corpus config (TOML)")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config value, e.g. models.violin.steps=30; repeatable")
  p.set_defaults(func=_cmd_run, passes_beam_args=True)
  s = sub.add_parser("status", help="what the corpus job has processed, what is pending or "
                     "failed, and its last runs")
  s.add_argument("config", help="corpus config (TOML)")
  s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
  s.add_argument("--json", action="store_true", help="print JSON")
  s.set_defaults(func=_cmd_status)


def _cmd_run(args, beam_args):
  from jobs import corpus  # pylint: disable=g-import-not-at-top
  result = corpus.run_corpus(args.config, beam_args, args.set)
  print(f"run {result.run_id}: exit {result.exit_code} ("
        + ", ".join(f"{s.name} {s.status}" for s in result.stages) + ")"
        + (f"; report: {result.report}" if result.report else ""))
  return result.exit_code


def _cmd_status(args, unused_beam_args):
  from jobs import corpus  # pylint: disable=g-import-not-at-top
  status = corpus.corpus_status(args.config, args.set)
  if args.json:
    print(json.dumps(status, indent=1, default=str))
    return EXIT_OK
  print(corpus.format_status(status))
  return EXIT_OK


def _add_models_parser(sub):
  p = sub.add_parser("models", help="the built-in instrument models and their model cards",
                     description="Lists the built-in models this copy ships (names that "
                     "`transfer --model` and a corpus config's [transfer] models accept) with "
                     "their cards: data, architecture, training, eval losses, transfer quality, "
                     "licence.")
  p.add_argument("--json", action="store_true", help="print the cards as JSON")
  p.set_defaults(func=_cmd_models, imports_tensorflow=False)


def _cmd_models(args, unused_beam_args):
  from ddsp_core import builtin_models  # pylint: disable=g-import-not-at-top
  if args.json:
    print(json.dumps({name: dict(builtin_models.read_card(path), path=path)
                      for name, path in builtin_models.installed().items()}, indent=1))
  else:
    print("\n".join(builtin_models.summary_lines()))
  return EXIT_OK


def _add_studio_parser(sub):
  p = sub.add_parser(
      "studio", help="the timbre-transfer Colab as a local web page (Gradio; the studio extra)",
      description="Record or upload a take, see its loudness, f0 and confidence, pick a shipped "
      "instrument, a model from --models or an uploaded model zip, adjust as in the Colab, "
      "listen and compare spectrograms; 'Add to batch' gives the settings as a corpus config's "
      "[transfer] section. Listens on 127.0.0.1 unless --host says otherwise; fetches nothing.")
  p.add_argument("--models", action="append", default=[], metavar="DIR",
                 help="a model dir, or a folder of model dirs and zips, for the menu; repeatable")
  p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
  p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
  p.add_argument("--max_take_minutes", type=float, default=10.0,
                 help="longer takes are refused (use `ddsp-beam transfer` for them)")
  p.add_argument("--work_dir", default=None,
                 help="where renders are written (default: a new temporary folder)")
  _add_crepe_args(p)
  p.set_defaults(func=_cmd_studio)


def _cmd_studio(args, unused_beam_args):
  from jobs import studio  # pylint: disable=g-import-not-at-top
  if args.max_take_minutes <= 0:
    raise SystemExit("ddsp-beam studio: --max_take_minutes must be positive")
  studio.serve(args.models, host=args.host, port=args.port,
               max_take_minutes=args.max_take_minutes, work_dir=args.work_dir,
               crepe_model=args.crepe_model, precision=args.precision, f0_rate=args.f0_rate)
  return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="ddsp-beam", description="DDSP datasets, training and timbre transfer on Apache Beam.")
  from ddsp_core.version import __version__  # pylint: disable=g-import-not-at-top
  parser.add_argument("--version", action="version", version=f"ddsp-beam {__version__}")
  parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
  sub = parser.add_subparsers(dest="command", required=True)
  _add_features_parser(sub)
  _add_prepare_parser(sub)
  _add_train_parsers(sub)
  _add_transfer_parser(sub)
  _add_import_parser(sub)
  _add_corpus_parsers(sub)
  _add_models_parser(sub)
  _add_studio_parser(sub)
  for p in sub.choices.values():  # also after the subcommand; SUPPRESS keeps the top-level value
    p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
  return parser


def main(argv=None) -> int:
  logging.getLogger().addFilter(_NOISE_FILTER)  # before Beam is imported to check flags
  parser = build_parser()
  try:
    args, beam_args = cli_flags.parse_command_line(parser, sys.argv[1:] if argv is None else argv)
  except cli_flags.FlagError as e:
    print(e, file=sys.stderr)
    return EXIT_RUN_FAILED
  _quiet_startup(args.verbose, getattr(args, "imports_tensorflow", True))
  try:
    return args.func(args, beam_args)
  except SystemExit as e:
    if isinstance(e.code, str):
      print(e.code, file=sys.stderr)
      return EXIT_RUN_FAILED
    raise
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    return EXIT_RUN_FAILED
  except Exception as e:  # pylint: disable=broad-except
    print(f"ddsp-beam {args.command}: error: {e}", file=sys.stderr)
    return EXIT_RUN_FAILED


if __name__ == "__main__":
  sys.exit(main())
