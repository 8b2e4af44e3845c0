"""Flags every `ddsp-beam` subcommand accepts: its own, Beam's where it passes them on, nothing else."""

import os
import subprocess
import sys

import pytest

from jobs import cli, cli_flags
from tests.conftest import REPO, tone

# Each subcommand with its required arguments, a misspelled flag of its own and the right spelling.
MISSPELLED = [
    (["features", "a.wav", "-o", "f.parquet"], "--crepe_modle", "--crepe_model"),
    (["prepare", "--input", "a.wav", "--output", "out"], "--exmple_secs", "--example_secs"),
    (["train", "--data", "d", "--model_dir", "m"], "--stesp", "--steps"),
    (["eval", "--data", "d", "--model_dir", "m"], "--max_exmples", "--max_examples"),
    (["export", "--model_dir", "m"], "--zpi", "--zip"),
    (["transfer", "a.wav", "--model", "m", "--output", "out"], "--pitch_shfit", "--pitch_shift"),
    (["import-model", "src", "-o", "out"], "--trust_pikle", "--trust_pickle"),
    (["run", "c.toml"], "--sett", "--set"),
    (["status", "c.toml"], "--jsno", "--json"),
    (["models"], "--jsn", "--json"),
    (["studio"], "--prot", "--port"),
]


@pytest.mark.parametrize("base,wrong,right", MISSPELLED, ids=[m[0][0] for m in MISSPELLED])
def test_every_subcommand_refuses_a_misspelled_flag(base, wrong, right, tmp_path, capsys,
                                                    monkeypatch):
  monkeypatch.chdir(tmp_path)  # the paths above are relative
  assert cli.main(base + [wrong, "1"]) == cli.EXIT_RUN_FAILED
  err = capsys.readouterr().err
  assert f"ddsp-beam {base[0]}: unknown flag {wrong} (did you mean {right}?)" in err
  assert os.listdir(tmp_path) == []  # nothing ran


def test_prepare_refuses_misspelled_flags_before_running(tmp_path, write_wav, capsys):
  """The issue's case: before, this prepared with the default CREPE model and window, exit 0."""
  write_wav("x/a.wav", tone(440, 2.5))
  out = tmp_path / "out"
  rc = cli.main(["prepare", "--input", str(tmp_path / "x" / "*.wav"), "--output", str(out),
                 "--crepe_modle", "tiny", "--exmple_secs", "2", "--no_progress"])
  assert rc == cli.EXIT_RUN_FAILED
  err = capsys.readouterr().err
  assert "unknown flag --crepe_modle (did you mean --crepe_model?)" in err
  assert "unknown flag --exmple_secs (did you mean --example_secs?)" in err
  assert "unknown flag tiny" not in err and "'2'" not in err  # values are not flags
  assert not out.exists()


def test_a_misspelled_beam_flag_is_refused_with_beams_spelling(tmp_path, capsys):
  for flag in ("--direct_num_worker", "--direct_num_worker=2"):
    rc = cli.main(["prepare", "--input", str(tmp_path / "a.wav"), "--output", str(tmp_path / "o"),
                   flag, "2"])
    assert rc == cli.EXIT_RUN_FAILED
    assert ("unknown flag --direct_num_worker (did you mean --direct_num_workers?)"
            in capsys.readouterr().err)
  assert cli.main(["run", str(tmp_path / "c.toml"), "--dask_worker", "2"]) == cli.EXIT_RUN_FAILED
  assert "(did you mean --dask_workers?)" in capsys.readouterr().err


def test_a_bad_beam_value_is_refused_before_running(tmp_path, capsys):
  rc = cli.main(["prepare", "--input", str(tmp_path / "a.wav"), "--output", str(tmp_path / "o"),
                 "--direct_num_workers", "many"])
  assert rc == cli.EXIT_RUN_FAILED
  assert ("ddsp-beam prepare: argument --direct_num_workers: invalid int value: 'many'"
          in capsys.readouterr().err)


def test_subcommands_without_beam_refuse_beam_flags(tmp_path, capsys):
  rc = cli.main(["features", str(tmp_path / "a.wav"), "-o", str(tmp_path / "f.parquet"),
                 "--runner", "DirectRunner"])
  assert rc == cli.EXIT_RUN_FAILED
  assert "ddsp-beam features: unknown flag --runner" in capsys.readouterr().err


def test_a_stray_argument_is_refused(tmp_path, capsys):
  rc = cli.main(["prepare", "--input", str(tmp_path / "a.wav"), "--output", str(tmp_path / "o"),
                 "stray"])
  assert rc == cli.EXIT_RUN_FAILED
  assert "ddsp-beam prepare: unexpected argument 'stray'" in capsys.readouterr().err


def test_beam_and_dask_flags_pass_through_with_their_values():
  """`--direct_num_workers 2`: the 2 is the flag's value, not an input file of transfer."""
  argv = ["--verbose", "transfer", "--model", "m", "--output", "o", "--direct_num_workers", "2",
          "b.wav", "--runner=dask", "--dask_workers", "3", "--dask_address", "tcp://127.0.0.1:8786",
          "--experiments", "a", "--save_main_session", "--crepe", "tiny"]
  args, beam_args = cli_flags.parse_command_line(cli.build_parser(), argv)
  assert args.files == ["b.wav"] and args.crepe_model == "tiny" and args.verbose
  assert beam_args == ["--direct_num_workers", "2", "--runner=dask", "--dask_workers", "3",
                       "--dask_address", "tcp://127.0.0.1:8786", "--experiments", "a",
                       "--save_main_session"]
  args, beam_args = cli_flags.parse_command_line(
      cli.build_parser(), ["run", "c.toml", "--dask_npartitions=4", "--verbose"])
  assert args.config == "c.toml" and args.verbose and beam_args == ["--dask_npartitions=4"]
  args, beam_args = cli_flags.parse_command_line(cli.build_parser(), ["status", "c.toml"])
  assert not args.verbose and beam_args == []


def test_parsing_imports_no_tensorflow():
  """TF_CPP_MIN_LOG_LEVEL is set after parsing: nothing before may import TensorFlow."""
  code = ("import sys; from jobs import cli, cli_flags; "
          "cli_flags.parse_command_line(cli.build_parser(), "
          "['prepare', '--input', 'a', '--output', 'o', '--runner=dask', '--dask_workers', '2']); "
          "print(sorted(m for m in sys.modules if m.split('.')[0] in "
          "('tensorflow', 'keras', 'tf_keras', 'pipelines')))")
  done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                        check=True)
  assert done.stdout.strip() == "[]"


def test_studio_refuses_a_non_positive_take_limit(capsys):
  assert cli.main(["studio", "--max_take_minutes", "0"]) == cli.EXIT_RUN_FAILED
  assert "--max_take_minutes must be positive" in capsys.readouterr().err


def test_studio_listens_on_127_0_0_1_by_default():
  args, _ = cli_flags.parse_command_line(cli.build_parser(), ["studio"])
  assert (args.host, args.port, args.max_take_minutes) == ("127.0.0.1", 7860, 10.0)
