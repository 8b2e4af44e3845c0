"""Running a Beam pipeline: options from pass-through flags, failures, metrics."""

from typing import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

NAMESPACE = "ddsp_beam"


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


def run_and_wait(pipeline: beam.Pipeline, what: str = "the Beam pipeline"):
  """Runs `pipeline` to the end; any failure becomes a `PipelineFailed` naming its cause."""
  try:
    result = pipeline.run()
    result.wait_until_finish()
  except Exception as e:  # pylint: disable=broad-except
    raise PipelineFailed(f"{what} failed ({type(e).__name__}: {e})") from e
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
