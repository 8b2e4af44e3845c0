"""Input patterns resolved with Beam's FileSystems."""

from pipelines import inputs


def test_patterns_directories_and_plain_paths(tmp_path):
  for rel in ("a/x.wav", "a/b/y.FLAC", "a/notes.csv", "c.mp3"):
    p = tmp_path / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
  root = str(tmp_path)
  # A directory means its audio files, recursively.
  assert inputs.expand_inputs([root + "/a"]) == [root + "/a/b/y.FLAC", root + "/a/x.wav"]
  # A pattern means everything it matches (the .csv will be reported as not audio).
  assert root + "/a/notes.csv" in inputs.expand_inputs([root + "/a/**"])
  assert inputs.expand_inputs([root + "/*.mp3", root + "/c.mp3"]) == [root + "/c.mp3"]
  assert inputs.expand_inputs([root + "/missing.wav"]) == [root + "/missing.wav"]
  assert inputs.expand_inputs([root + "/*.ogg"]) == []


def test_symlink_loops_are_not_followed(tmp_path):
  root = tmp_path / "tree"
  (root / "sub").mkdir(parents=True)
  (root / "sub" / "take.wav").write_bytes(b"x")
  (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
  assert inputs.expand_inputs([str(root)]) == [str(root / "sub" / "take.wav")]
  assert inputs.expand_inputs([str(root / "**")]) == [str(root / "sub" / "take.wav")]

