"""Checks of a `ddsp-beam` command line: each flag is the subcommand's or Beam's, or refused.

`prepare`, `transfer` and `run` pass the flags they do not define to Beam's
`PipelineOptions`, which drops (with only a log warning) any it does not know:
a misspelled `--crepe_modle tiny` would silently run with the default. So the
command line is split into the subcommand's flags and Beam's before anything
runs, Beam's are parsed the way Beam will parse them, and anything else is
refused naming the closest known flag. Subcommands that take no Beam flags
refuse every flag they do not define.
"""

import argparse
import difflib
from typing import List, Sequence, Tuple

# Read (and removed) by pipelines.runner.beam_session before Beam sees the flags.
PROJECT_BEAM_FLAGS = (("--dask_address", str), ("--dask_workers", int))
# Beam registers the DaskRunner's options only when it imports the runner to run it.
_DASK_OPTIONS_MODULE = "apache_beam.runners.dask.dask_runner"


class FlagError(ValueError):
  """A flag that neither the subcommand nor Beam knows, or a Beam flag with a bad value."""


def option_strings(parser: argparse.ArgumentParser) -> List[str]:
  """Every option string `parser` accepts (`--crepe_model`, `-o`, `--no-viterbi`, ...)."""
  return [s for action in parser._actions for s in action.option_strings]  # pylint: disable=protected-access


def _raise(message):
  raise FlagError(message)


def beam_parser(dask: bool = True) -> argparse.ArgumentParser:
  """A parser of every flag Beam's PipelineOptions knows, plus the project's Dask flags.

  Built as `PipelineOptions.get_all_options` builds its own: Beam's parser class
  (it adds ValueProvider arguments), no abbreviations, one copy of each
  registered options class. Errors raise `FlagError` instead of exiting.
  `dask=False` skips importing the DaskRunner (and dask.distributed, seconds)
  for its `--dask_*` flags, unless something else has imported it.
  """
  import importlib  # pylint: disable=g-import-not-at-top
  from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top
  if dask:
    try:
      importlib.import_module(_DASK_OPTIONS_MODULE)
    except ImportError:  # a Beam without the DaskRunner: its flags are unknown, as to Beam
      pass
  parser = pipeline_options._BeamArgumentParser(allow_abbrev=False, add_help=False)  # pylint: disable=protected-access
  parser.error = _raise  # argparse reports through error(); it would exit the process
  classes = {}
  for cls in pipeline_options.PipelineOptions.__subclasses__():
    classes.setdefault(str(cls), cls)
  for cls in classes.values():
    cls._add_argparse_args(parser)  # pylint: disable=protected-access
  for flag, kind in PROJECT_BEAM_FLAGS:
    parser.add_argument(flag, type=kind)
  return parser


def split_beam_args(args: Sequence[str], own: Sequence[str],
                    beam: argparse.ArgumentParser) -> Tuple[List[str], List[str]]:
  """(the subcommand's tokens, Beam's tokens) of `args`, each in its order.

  A token is Beam's when it is a Beam flag (`--flag` or `--flag=value`, the
  exact name) that the subcommand does not define, or the value that follows
  such a flag when it takes one: `--direct_num_workers 2` is one Beam flag, and
  its `2` is not an input file. Everything from `--` on stays the subcommand's.
  """
  actions = beam._option_string_actions  # pylint: disable=protected-access
  own = set(own)
  mine, theirs = [], []
  i = 0
  while i < len(args):
    arg = args[i]
    if arg == "--":
      mine.extend(args[i:])
      break
    name = arg.split("=", 1)[0]
    action = actions.get(name) if arg.startswith("--") and name not in own else None
    if action is None:
      mine.append(arg)
      i += 1
      continue
    takes_next = "=" not in arg and action.nargs != 0 and not (
        action.nargs == "?" and (i + 1 == len(args) or args[i + 1].startswith("-")))
    n = 2 if takes_next else 1
    theirs.extend(args[i:i + n])
    i += n
  return mine, theirs


def check_beam_values(command: str, beam: argparse.ArgumentParser, beam_args: Sequence[str]):
  """Parses `beam_args` as Beam will; `FlagError` for a bad value (`--direct_num_workers x`)."""
  try:
    beam.parse_known_args(list(beam_args))
  except FlagError as e:
    raise FlagError(f"ddsp-beam {command}: {e}") from None


def unknown_message(command: str, unknown: Sequence[str], known: Sequence[str]) -> str:
  """One line per unknown flag of `command`, with the closest of `known` when one is close.

  A value after an unknown flag is not reported; stray values are, when there
  is no unknown flag.
  """
  flags = [a for a in unknown if a.startswith("-") and a != "--"]
  lines = []
  for arg in flags or unknown:
    if not arg.startswith("-"):
      lines.append(f"ddsp-beam {command}: unexpected argument {arg!r}")
      continue
    name = arg.split("=", 1)[0]
    close = difflib.get_close_matches(name, known, n=1)
    lines.append(f"ddsp-beam {command}: unknown flag {name}"
                 + (f" (did you mean {close[0]}?)" if close else ""))
  return "\n".join(lines + [f"(see ddsp-beam {command} --help)"])


def parse_command_line(parser: argparse.ArgumentParser,
                       argv: Sequence[str]) -> Tuple[argparse.Namespace, List[str]]:
  """(namespace, Beam's flags) of `argv`; `FlagError` for a flag no one knows.

  A subcommand takes Beam flags when its parser's defaults say
  `passes_beam_args=True`. Help and argparse's own errors (a missing required
  flag, an unknown subcommand) exit as argparse does.
  """
  argv = list(argv)
  # The top-level flags take no value, so the first other token names the subcommand.
  command = next((a for a in argv if not a.startswith("-")), None)
  subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # pylint: disable=protected-access
  sub = subparsers.choices.get(command)
  if sub is None or "-h" in argv or "--help" in argv:
    return parser.parse_args(argv), []
  known, beam_args = option_strings(sub), []
  if sub.get_default("passes_beam_args"):
    beam = beam_parser(dask=any("dask" in a.lower() for a in argv))
    at = argv.index(command) + 1
    mine, beam_args = split_beam_args(argv[at:], known, beam)
    argv = argv[:at] + mine
    check_beam_values(command, beam, beam_args)
    known = known + option_strings(beam)
  args, unknown = parser.parse_known_args(argv)
  if unknown:
    raise FlagError(unknown_message(command, unknown, known))
  return args, beam_args
