"""Analysing recordings into the prepare cache with linear chains of transforms (for Dask).

Beam's DaskRunner (2.77) runs a pipeline as one chain: it does not separate a
ParDo's tagged outputs (every consumer gets every element) and computes only
the last transform of the graph; it has no metrics either. So on Dask,
`prepare.run_prepare` first fills the prepare cache on the cluster with two
chains, then assembles the dataset where it runs, on the DirectRunner,
replaying every recording from the cache (only the cheap dataset-wide steps:
shards, statistics, reports):

  1. paths -> PlanIntoCache: validate each recording; keep its chunk plan, or
     its error or skip, in the cache;
  2. chunk tasks -> ComputeIntoCache -> GroupByKey(path) -> CompleteFile: each
     chunk's windows, then each recording's row (which completes its entry).

The work is the same code as the DirectRunner's (`PlanChunks`,
`ComputeChunkFeatures`, `FileRow`), so the dataset is the same. Everything is
written to the cache under temporary names and renamed, so a task that runs
twice (a lost worker's work done again) writes the same bytes again or reuses
the chunk the first try kept. The cache
must be on storage that the workers and this process share.
"""

import dataclasses
from typing import Dict, Optional, Sequence

import apache_beam as beam

from pipelines import prepare
from pipelines import prepare_cache
from pipelines import runner


def _main_and_tagged(outputs):
  """Splits a DoFn's outputs into main values and {tag: [values]}."""
  main, tagged = [], {}
  for out in outputs:
    if isinstance(out, beam.pvalue.TaggedOutput):
      tagged.setdefault(out.tag, []).append(out.value)
    else:
      main.append(out)
  return main, tagged


class PlanIntoCache(beam.DoFn):
  """path -> path; keeps the recording's chunk plan (or error, or skip) in the cache."""

  def __init__(self, config: prepare.PrepareConfig, cache: prepare_cache.PrepareCache):
    super().__init__()
    self.cache = cache
    self.plan = prepare.PlanChunks(config, cache)  # keeps errors and skips itself

  def process(self, path):
    tasks, tagged = _main_and_tagged(self.plan.process(path))
    for _, meta in tagged.get("file_meta", []):
      self.cache.write_plan(meta["sha256"], path, meta, [dataclasses.asdict(t) for t in tasks])
    yield path


def _chunk_task(fields: dict) -> prepare.ChunkTask:
  """A ChunkTask from its plan.json form (lists where the task holds tuples)."""
  return prepare.ChunkTask(**dict(fields, window_starts=tuple(fields["window_starts"]),
                                  signature=tuple(fields.get("signature") or ())))


class ComputeIntoCache(beam.DoFn):
  """(chunk task, file meta) -> (path, (meta, chunk summary)); keeps the chunk's windows."""

  def __init__(self, config: prepare.PrepareConfig, cache: prepare_cache.PrepareCache):
    super().__init__()
    self.compute = prepare.ComputeChunkFeatures(config, cache)

  def setup(self):
    self.compute.setup()

  def process(self, element):
    task, meta = element
    task = _chunk_task(task)
    _, tagged = _main_and_tagged(self.compute.process(task))
    for path, summary in tagged.get("chunks", []):
      yield path, (meta, summary)


class CompleteFile(beam.DoFn):
  """(path, [(meta, chunk summary)]) -> files.parquet row, kept in the cache (entry complete)."""

  def __init__(self, cache: prepare_cache.PrepareCache):
    super().__init__()
    self.file_row = prepare.FileRow(cache)

  def process(self, element):
    path, values = element
    values = list(values)
    grouped = {"meta": [values[0][0]], "chunks": [summary for _, summary in values]}
    # A file that changed is left incomplete: the assembly prepares it again, as it is then.
    rows, _ = _main_and_tagged(self.file_row.process((path, grouped)))
    yield from rows


def analyse_into_cache(paths: Sequence[str], config: prepare.PrepareConfig,
                       cache: prepare_cache.PrepareCache, beam_args: Sequence[str],
                       hashes: Optional[Dict[str, str]] = None) -> dict:
  """Plans and computes `paths` into `cache` on the runner of `beam_args`; returns counts."""
  plan = beam.Pipeline(options=runner.pipeline_options(beam_args))
  _ = (plan
       | "Inputs" >> beam.Create(sorted(paths))
       | "PlanIntoCache" >> beam.ParDo(PlanIntoCache(config, cache)))
  runner.run_and_wait(plan, "planning on the runner")
  tasks, reusable = [], 0
  for path, sha in prepare_cache.content_hashes(paths, hashes).items():
    kept = cache.read_plan(sha) if sha and not cache.complete(sha) else None
    if kept:
      tasks += [(dict(t, path=path), kept["meta"]) for t in kept["tasks"]]
      # Chunks an interrupted run finished: reused by ComputeChunkFeatures if their samples
      # still decode to the kept digest (Dask has no metrics, so they are counted here).
      reusable += cache.kept_chunks(sha, [prepare.chunk_plan(_chunk_task(t))
                                          for t in kept["tasks"]])
  if tasks:
    compute = beam.Pipeline(options=runner.pipeline_options(beam_args))
    _ = (compute
         | "ChunkTasks" >> beam.Create(tasks)
         | "ComputeIntoCache" >> beam.ParDo(ComputeIntoCache(config, cache))
         | "GroupByFile" >> beam.GroupByKey()
         | "CompleteFile" >> beam.ParDo(CompleteFile(cache)))
    runner.run_and_wait(compute, "the analysis on the runner")
  counts = {"files_computed": len(paths), "chunks_computed": len(tasks) - reusable}
  return dict(counts, chunks_cached=reusable) if reusable else counts
