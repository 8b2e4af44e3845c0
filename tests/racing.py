"""Race tests: one function in several processes at once, released together round after round."""

import multiprocessing
import traceback

BARRIER_TIMEOUT_S = 300


def _worker(target, args, index, rounds, barrier, results):
  for r in range(rounds):
    barrier.wait(BARRIER_TIMEOUT_S)
    try:
      results.put((r, index, "ok", target(r, index, barrier, *args)))
    except Exception:  # pylint: disable=broad-except  # reported to the test, which fails on it
      results.put((r, index, "error", traceback.format_exc(limit=4)))


def race(target, args=(), workers=2, rounds=5):
  """Runs `target(round, worker, barrier, *args)` in `workers` processes, `rounds` times.

  Every round starts with all workers released by one barrier; `target` may
  wait on the barrier again to line the workers up at a second point. The
  workers are forked (spawning would import Beam and TensorFlow again in each,
  for many seconds), so `target` must not run TensorFlow: a forked copy of
  its runtime can hang.

  A worker that fails goes on with the next round (so a test can count the
  rounds that fail); barrier waits time out after BARRIER_TIMEOUT_S, so a
  worker left alone at a barrier ends the race instead of hanging it.

  Returns:
    {round: {worker: ("ok", value) or ("error", traceback text)}}.
  """
  ctx = multiprocessing.get_context("fork")
  barrier = ctx.Barrier(workers)
  results = ctx.Queue()
  procs = [ctx.Process(target=_worker, args=(target, args, i, rounds, barrier, results))
           for i in range(workers)]
  for p in procs:
    p.start()
  out = {}
  try:
    while any(p.is_alive() for p in procs) or not results.empty():
      try:
        r, i, status, value = results.get(timeout=1)
      except Exception:  # pylint: disable=broad-except  # queue.Empty: check the workers again
        continue
      out.setdefault(r, {})[i] = (status, value)
  finally:
    for p in procs:
      p.join(BARRIER_TIMEOUT_S)
  return out


def failures(results):
  """The error texts of `race`'s results, and the rounds in which some worker failed."""
  errors = [v for by_worker in results.values() for s, v in by_worker.values() if s == "error"]
  rounds = sorted(r for r, by_worker in results.items()
                  if any(s == "error" for s, _ in by_worker.values()))
  return errors, rounds
