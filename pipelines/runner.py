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
import re
import signal
import sys
import threading
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
  """Runs `pipeline` to the end; any failure becomes a `PipelineFailed` naming its cause.

  With `--direct_running_mode=multi_processing` the run is watched for a worker
  process that dies (see `_run_watching_workers`).
  """
  if _multi_processing(pipeline):
    return _run_watching_workers(pipeline, what)
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


def _multi_processing(pipeline: beam.Pipeline) -> bool:
  from apache_beam.options.pipeline_options import DirectOptions  # pylint: disable=g-import-not-at-top
  options = pipeline.options.view_as(DirectOptions)
  return options.direct_running_mode == "multi_processing"


# What Beam's `SubprocessSdkWorker.run` raises, in its own thread named 'run_worker',
# when a worker process exits with an error (Beam 2.x, local_job_service.py).
_WORKER_EXIT = re.compile(r"Worker subprocess exited with return code (-?\d+)")


def _exit_cause(code: int) -> str:
  # The worker runs under `/bin/sh -c`, which reports death by signal N as 128 + N.
  number = -code if code < 0 else code - 128 if code > 128 else 0
  try:
    return f"exit code {code}: killed by {signal.Signals(number).name}" if number else f"exit code {code}"
  except ValueError:
    return f"exit code {code}"


def _run_watching_workers(pipeline: beam.Pipeline, what: str):
  """`pipeline.run()` in multi_processing mode, failing when a worker process dies.

  Why: Beam's FnApiRunner only logs the death of a worker (an exception in its
  'run_worker' thread) and, when the worker had not yet answered, waits for its
  data forever. So the run goes in a daemon thread, Beam's exception is caught by
  a `threading.excepthook`, and on a death the remaining workers are stopped (their
  threads are not daemons: the interpreter would wait for them at exit) and the run
  fails with `PipelineFailed`. Nothing is published: the caller publishes only after
  this returns.
  """
  finished = threading.Event()
  outcome = {}
  previous_hook = threading.excepthook

  def hook(args):
    match = None
    if args.thread is not None and args.thread.name == "run_worker":
      match = _WORKER_EXIT.search(str(args.exc_value))
    if match is None:
      previous_hook(args)
      return
    if "dead" not in outcome:
      outcome["dead"] = int(match.group(1))
      finished.set()

  def run():
    try:
      result = pipeline.run()
      result.wait_until_finish()
      outcome["result"] = result
    except BaseException as e:  # pylint: disable=broad-except  # handed to the caller
      outcome["error"] = e
    finally:
      finished.set()

  threading.excepthook = hook
  try:
    threading.Thread(target=run, name="beam-pipeline", daemon=True).start()
    finished.wait()
    if "result" in outcome:
      return outcome["result"]
    if "dead" in outcome:
      stopped = _stop_beam_workers()
      logging.getLogger(__name__).info("stopped %d remaining Beam worker(s)", stopped)
      # Their threads now raise the same exception; the hook takes it while they end,
      # so the user sees one clear error, not a traceback per stopped worker.
      for thread in threading.enumerate():
        if thread.name == "run_worker":
          thread.join(timeout=10)
      raise PipelineFailed(f"{what} failed (a Beam worker process died, "
                           f"{_exit_cause(outcome['dead'])})")
    error = outcome["error"]
    raise PipelineFailed(f"{what} failed ({type(error).__name__}: {error})") from error
  finally:
    threading.excepthook = previous_hook


def _stop_beam_workers() -> int:
  """SIGKILLs the Beam SDK worker processes below this one; returns how many."""
  parents, commands = {}, {}
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat", "rb") as f:
        stat = f.read().decode("utf-8", "replace")
      with open(f"/proc/{entry}/cmdline", "rb") as f:
        commands[int(entry)] = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
      continue  # gone meanwhile
    parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state
  below, frontier = set(), {os.getpid()}
  while frontier:
    frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - below
    below |= frontier
  stopped = 0
  for pid in sorted(below):
    if "sdk_worker_main" in commands.get(pid, ""):
      try:
        os.kill(pid, signal.SIGKILL)
        stopped += 1
      except OSError:
        pass
  return stopped


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
