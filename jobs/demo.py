"""`make demo`: the corpus job (`ddsp-beam run`) on the small corpus shipped in demo/corpus.

demo/corpus.toml says what runs: prepare the violin recordings (CREPE tiny,
2-second windows, one recording held out for eval), train tiny_instrument.gin
on them for a few hundred steps (30 when CI=true), transfer the voice and
trumpet recordings through the model and the shipped instruments, and write the report. Rerunning does
only what changed (nothing, the second time).
"""

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CONFIG = os.path.join(REPO, "demo", "corpus.toml")


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("--output", default=None, help="output root (default: the config's, demo_out)")
  ap.add_argument("--config", default=DEMO_CONFIG)
  ap.add_argument("--steps", type=int, default=30 if os.environ.get("CI") == "true" else None,
                  help="training steps (default: the config's; 30 when CI=true)")
  args, beam_args = ap.parse_known_args(argv)
  from jobs import cli  # pylint: disable=g-import-not-at-top
  overrides = []
  if args.output:
    overrides += ["--set", f"output={json.dumps(os.path.abspath(args.output))}"]
  if args.steps:
    overrides += ["--set", f"models.violin.steps={args.steps}"]
  print(f"[demo] ddsp-beam run {os.path.relpath(args.config)} "
        f"{' '.join(overrides)}: prepare -> train -> transfer -> report", flush=True)
  rc = cli.main(["run", args.config] + overrides + beam_args)
  print("[demo] open the report in a browser (static files): the run line above names it; "
        f"`ddsp-beam status {os.path.relpath(args.config)}` shows what is done", flush=True)
  return rc


if __name__ == "__main__":
  sys.exit(main())
