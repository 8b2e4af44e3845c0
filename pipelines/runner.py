"""Running a Beam pipeline: options from pass-through flags, failures, metrics, Dask.

`--runner=dask` (or `DaskRunner`) names Beam's DaskRunner
(`apache_beam.runners.dask.dask_runner.DaskRunner`, whose short name Beam does
not register). `--dask_address tcp://host:8786` is the scheduler (Beam's own
`--dask_client_address` works too); without one, `beam_session` starts a
`distributed.LocalCluster` sized to the machine (`--dask_workers N` to choose)
and closes it at the end.
"""

import contextlib
import logging
import os
import sys
from typing import List, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

NAMESPACE = "ddsp_beam"
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
_DASK_NAMES = ("dask", "daskrunner", DASK_RUNNER.lower())


class PipelineFailed(RuntimeError):
  """The run itself failed (a worker died, storage failed, a bad option...)."""


def pipeline_options(beam_args: Sequence[str]) -> PipelineOptions:
  """Beam options from pass-through flags, with the DirectRunner as the explicit default.

  Without it Beam first tries to download the Prism runner (which fails
  offline and falls back with a warning).
  """
  args = list(beam_args)
  if not any(a == "--runner" or a.startswith("--runner=") for a in args):
    args.append("--runner=DirectRunner")
  return PipelineOptions(args)


def _value(args: Sequence[str], flag: str):
  """The value of `--flag=V` or `--flag V` in args (the last one), else None."""
  value = None
  for i, arg in enumerate(args):
    if arg == flag and i + 1 < len(args):
      value = args[i + 1]
    elif arg.startswith(flag + "="):
      value = arg.split("=", 1)[1]
  return value


def _without(args: Sequence[str], flag: str) -> List[str]:
  out, skip = [], False
  for arg in args:
    if skip:
      skip = False
    elif arg == flag:
      skip = True
    elif not arg.startswith(flag + "="):
      out.append(arg)
  return out


def is_dask(beam_args: Sequence[str]) -> bool:
  runner = _value(beam_args, "--runner")
  return bool(runner) and runner.lower() in _DASK_NAMES


@contextlib.contextmanager
def beam_session(beam_args: Sequence[str]):
  """Yields the Beam args to run with: `--runner=dask` resolved, a LocalCluster when needed.

  Use one session around all the pipelines of a command, so they share the cluster.
  """
  args = list(beam_args)
  if not is_dask(args):
    yield args
    return
  args = _without(args, "--runner") + [f"--runner={DASK_RUNNER}"]
  address = _value(args, "--dask_address")
  workers = _value(args, "--dask_workers")
  args = _without(_without(args, "--dask_address"), "--dask_workers")
  if address:
    args.append(f"--dask_client_address={address}")
  if not (_value(args, "--dask_npartitions") or _value(args, "--dask_partition_size")):
    args.append("--dask_partition_size=1")  # one task per file or chunk: they are heavy
  if _value(args, "--dask_client_address"):
    yield args
    return
  import distributed  # pylint: disable=g-import-not-at-top  # the [dask] extra
  n = int(workers) if workers else max(1, os.cpu_count() or 1)
  logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines are per connection
  with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                host="127.0.0.1", dashboard_address=None) as cluster:
    print(f"[dask] a LocalCluster of {n} worker processes at {cluster.scheduler_address}",
          file=sys.stderr, flush=True)
    yield args + [f"--dask_client_address={cluster.scheduler_address}"]
    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # closing races are not news


def run_and_wait(pipeline: beam.Pipeline, what: str = "the Beam pipeline"):
  """Runs `pipeline` to the end; any failure becomes a `PipelineFailed` naming its cause."""
  result = None
  try:
    result = pipeline.run()
    result.wait_until_finish()
  except Exception as e:  # pylint: disable=broad-except
    raise PipelineFailed(f"{what} failed ({type(e).__name__}: {e})") from e
  finally:
    client = getattr(result, "client", None)  # the DaskRunner leaves its client open
    if client is not None:
      client.close()
  return result


def counters(result, namespace: str = NAMESPACE) -> dict:
  """The pipeline's counters in `namespace`, by name (committed, else attempted)."""
  try:
    query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(namespace))
  except Exception:  # pylint: disable=broad-except  # some runners have no metrics
    return {}
  out = {}
  for counter in query["counters"]:
    value = counter.committed if counter.committed is not None else counter.attempted
    out[counter.key.metric.name] = out.get(counter.key.metric.name, 0) + (value or 0)
  return out
