"""ddsp-beam studio: the timbre-transfer Colab as a local Gradio page.

Record or upload a take -> its loudness, f0 and confidence -> a model (the
shipped instruments, `--models` dirs, an uploaded zip) -> the Colab's
adjustments -> the output, its spectrogram beside the input's, and its f0
error and loudness L1. Every change of a control re-renders from the take's
cached features (`jobs.studio_session`): the output plays as soon as it is
synthesized, its measured figures follow (CREPE on the output costs many
times the synthesis). "Add to batch" writes the page's
settings as a corpus config's `[transfer]` section.

Offline and local: analytics off, no share link, no server-side rendering
(Node), the default theme's fonts from the installed package; listens on
127.0.0.1 unless told otherwise. Gradio is the `studio` extra.
"""

import os
from typing import Optional

from jobs import studio_session

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
TITLE = "ddsp-beam studio"


def _offline_environment() -> None:
  # Read by gradio and huggingface_hub at import: no telemetry, no version check, no hub calls.
  for key, value in (("GRADIO_ANALYTICS_ENABLED", "False"), ("HF_HUB_OFFLINE", "1"),
                     ("HF_HUB_DISABLE_TELEMETRY", "1"), ("GRADIO_SSR_MODE", "False")):
    os.environ.setdefault(key, value)


def import_gradio():
  """gradio, or SystemExit saying how to install the extra."""
  _offline_environment()
  try:
    import gradio  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise SystemExit("ddsp-beam studio needs Gradio: pip install 'ddsp-beam[studio]' "
                     "(make installs it)") from e
  return gradio


def _metrics_markdown(result: studio_session.Render, model: str) -> str:
  features = ("features cached" if result.seconds_features == 0
              else f"features {result.seconds_features:.1f} s")
  rendered = (f"octave shift {result.octave_shift:+d} · {result.duration_s:.2f} s of audio "
              f"rendered in {result.seconds_render:.1f} s ({features})")
  if not result.measured:
    return f"**{model}**: {rendered} · measuring the output's pitch and loudness…"
  f0 = ("no confident output frames" if result.f0_error_cents is None
        else f"{result.f0_error_cents:.1f} cents")
  return (f"**{model}**: f0 error **{f0}** (median over note-on frames) · loudness L1 "
          f"**{result.loudness_l1_db:.2f} dB** · {rendered}, measured in "
          f"{result.seconds_measure:.1f} s")


def _take_markdown(take: studio_session.Take) -> str:
  return f"take **{take.name}**: {take.duration_s:.2f} s at {take.sample_rate} Hz"


def _error_markdown(error: Exception) -> str:
  return f"**Error:** {error}"


def build_app(studio: studio_session.Studio):
  """The page (a `gradio.Blocks`) over `studio`."""
  gr = import_gradio()
  names = studio.model_names()
  low, high, step, default = {}, {}, {}, {}
  for key, (lo, hi, st, de) in studio_session.CONTROLS.items():
    low[key], high[key], step[key], default[key] = lo, hi, st, de

  def slider(key, label, info):
    return gr.Slider(low[key], high[key], value=default[key], step=step[key], label=label,
                     info=info, elem_id=key.replace("_", "-"))

  with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
    take_key = gr.State("")
    last_render = gr.State(None)  # (render, model name) of the latest render, to measure
    gr.Markdown(f"# {TITLE}\nRecord or upload a take, pick an instrument, adjust, listen. "
                "The same adjustments and renderer as `ddsp-beam transfer`.")
    with gr.Row():
      with gr.Column(scale=3):
        # format None: the file as uploaded reaches our decoder (the CLI's errors, no ffmpeg).
        take = gr.Audio(sources=["upload", "microphone"], type="filepath", format=None,
                        label="Take (record or upload: wav, flac, ogg, mp3; any rate)",
                        elem_id="take")
        features_plot = gr.Image(label="Loudness, f0 (MIDI) and confidence", type="filepath",
                                 interactive=False, elem_id="features")
      with gr.Column(scale=2):
        model = gr.Dropdown(names, value=names[0] if names else None, label="Model",
                            elem_id="model")
        model_zip = gr.File(label="…or upload a model zip (`ddsp-beam export --zip`)",
                            file_types=[".zip"], type="filepath", elem_id="model-zip")
        adjust = gr.Checkbox(True, label="Adjust toward the model's dataset statistics",
                             elem_id="adjust")
        threshold = slider("threshold", "Note threshold", "note detection (the Colab's 0-2)")
        quiet = slider("quiet", "Quiet (dB)", "lower note-off frames by up to this")
        autotune = slider("autotune", "Auto-tune", "pull f0 toward the scale, 0-1")
        chromatic = gr.Checkbox(False, label="Auto-tune to semitones (not the best major scale)",
                                elem_id="chromatic")
        pitch_shift = slider("pitch_shift", "Pitch shift (octaves)", "after the octave matching")
        loudness_shift = slider("loudness_shift", "Loudness shift (dB)", "after the matching")
        render_button = gr.Button("Resynthesize", variant="primary", elem_id="render")
    status = gr.Markdown("", elem_id="status")
    with gr.Row():
      with gr.Column():
        output = gr.Audio(label="Output", type="filepath", interactive=False, elem_id="output",
                          buttons=["download"])
        metrics = gr.Markdown("", elem_id="metrics")
      with gr.Column():
        spectrograms = gr.Image(label="Spectrograms: input, output", type="filepath",
                                interactive=False, elem_id="spectrograms")
    with gr.Row():
      batch_button = gr.Button("Add to batch", elem_id="add-to-batch")
    batch = gr.Textbox(label="[transfer] section for a corpus config (`ddsp-beam run`)",
                       lines=14, interactive=False, buttons=["copy"], elem_id="batch")

    controls = [adjust, threshold, quiet, autotune, chromatic, pitch_shift, loudness_shift]

    def config_of(values):
      return studio_session.control_config(*values, **studio.crepe_settings)

    def on_take(path, model_name):
      if not path:
        return "", None, ""
      try:
        loaded = studio.load_take(path)
        if not model_name:
          return loaded.key, None, _take_markdown(loaded)
        analysis = studio.features(loaded, model_name, config_of(()))
        note = "cached" if analysis["cached"] else f"{analysis['seconds']:.1f} s"
        return (loaded.key, studio.features_plot(loaded, model_name),
                f"{_take_markdown(loaded)} · features (CREPE, loudness): {note}")
      except studio_session.StudioError as e:
        return "", None, _error_markdown(e)

    def on_render(request: gr.Request, key, model_name, *values):
      if not key:
        return gr.update(), gr.update(), gr.update(), gr.update(), None
      try:
        if not model_name:
          raise studio_session.StudioError("pick a model")
        loaded = studio.take(key)
        result = studio.render(loaded, model_name, config_of(values), measure=False,
                               owner=request.session_hash)
        return (result.wav_path, result.spectrogram_png, _metrics_markdown(result, model_name),
                _take_markdown(loaded), (result, model_name))
      except (studio_session.StudioError, ValueError) as e:
        return None, None, "", _error_markdown(e), None

    def on_measure(request: gr.Request, rendered):
      # `rendered` is the session's latest render when this runs (Gradio reads State on the
      # server), so two queued measures may both see the same one; the studio holds one render
      # per session awaiting measurement, so the second (or one for a replaced render) is gone.
      if not rendered:
        return gr.update()
      result, model_name = rendered
      try:
        return _metrics_markdown(studio.measure(result, owner=request.session_hash), model_name)
      except studio_session.RenderGone:  # measured already, or a newer render's measure follows
        return gr.update()
      except studio_session.StudioError as e:
        return _error_markdown(e)

    def on_model_zip(path, current):
      if not path:
        return gr.update(), gr.update()
      try:
        name = studio.add_model_zip(path, os.path.basename(path))
        return gr.update(choices=studio.model_names(), value=name), f"model **{name}** added"
      except studio_session.StudioError as e:
        return gr.update(value=current), _error_markdown(e)

    def on_batch(model_name, *values):
      if not model_name:
        return "pick a model first"
      return studio.batch_section(model_name, config_of(values))

    render_inputs = [take_key, model] + controls
    render_outputs = [output, spectrograms, metrics, status, last_render]
    one = {"concurrency_id": "studio", "concurrency_limit": 1}  # one job at a time: one CPU

    def then_measure(event):
      # the output plays first; its f0 error and loudness L1 follow (CREPE on the output)
      event.then(on_measure, [last_render], [metrics], **one)

    then_measure(take.change(on_take, [take, model], [take_key, features_plot, status], **one)
                 .then(on_render, render_inputs, render_outputs, **one))
    model_zip.upload(on_model_zip, [model_zip, model], [model, status], **one)
    then_measure(model.change(on_render, render_inputs, render_outputs, **one))
    then_measure(render_button.click(on_render, render_inputs, render_outputs, **one))
    for control in (adjust, chromatic):
      then_measure(control.change(on_render, render_inputs, render_outputs, **one))
    for control in (threshold, quiet, autotune, pitch_shift, loudness_shift):
      then_measure(control.release(on_render, render_inputs, render_outputs, **one))
    batch_button.click(on_batch, [model] + controls, batch)
  return app


def launch(studio: studio_session.Studio, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
           block: bool = True, quiet: bool = False):
  """Starts the page's server; returns the app (its `local_url`) when `block` is False."""
  app = build_app(studio)
  app.launch(server_name=host, server_port=port, share=False, ssr_mode=False,
             prevent_thread_lock=not block, quiet=quiet, footer_links=[],
             allowed_paths=[studio.work_dir], show_error=True)
  return app


def serve(model_dirs=(), host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          max_take_minutes: float = studio_session.DEFAULT_MAX_TAKE_MINUTES,
          work_dir: Optional[str] = None, **crepe) -> None:
  """`ddsp-beam studio`: builds the menu and serves the page until interrupted."""
  studio = studio_session.Studio(model_dirs, work_dir=work_dir,
                                 max_take_minutes=max_take_minutes, **crepe)
  if not studio.model_names():
    print("note: no built-in models in this copy and no --models: upload a model zip")
  if host not in ("127.0.0.1", "localhost", "::1"):
    print(f"warning: listening on {host}: anyone who can reach this machine can use the page")
  print(f"ddsp-beam studio: http://{host}:{port}/ (models: {', '.join(studio.model_names())}; "
        f"renders in {studio.work_dir}; Ctrl-C stops)", flush=True)
  launch(studio, host, port, block=True, quiet=True)
