"""ddsp-beam studio in headless Chromium: upload, record, model zips, bad files, offline.

One studio server (in this process, on a free 127.0.0.1 port) and one browser
with a fake microphone that plays a shared-corpus take serve every test; each
test reloads the page. The browser's performance log is kept for the last
test, which checks that no request left 127.0.0.1.
"""

import json
import os
import re
import shutil
import socket
import time
import zipfile

import pytest
import soundfile as sf

from ddsp_core import builtin_models
from tests import browser as browser_lib

pytest.importorskip("gradio", reason="the studio extra is not installed (pip install '.[studio]')")

RENDER_TIMEOUT = 300  # s, a first render of a 12 s take on 2 busy cores
OUTPUT_HREF = "const a = document.querySelector('#output a[download]'); return a ? a.href : '';"
STATUS = "return document.querySelector('#status').innerText;"
METRICS = "return document.querySelector('#metrics').innerText;"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def studio_server(tmp_path_factory, corpus):
  from jobs import studio as studio_lib  # pylint: disable=g-import-not-at-top
  from jobs import studio_session  # pylint: disable=g-import-not-at-top
  # CREPE tiny (`--crepe_model tiny`) keeps the suite short; the default's render is tested in
  # test_studio_session.py.
  studio = studio_session.Studio(work_dir=str(tmp_path_factory.mktemp("studio")),
                                 cache_dir=str(tmp_path_factory.mktemp("models")),
                                 crepe_model="tiny")
  app = studio_lib.launch(studio, port=_free_port(), block=False, quiet=True)
  yield app.local_url, studio
  app.close()


@pytest.fixture(scope="module")
def page(studio_server, corpus):
  voice = os.path.join(corpus, "transfer", "voice_ohh_folk.wav")
  driver = browser_lib.start_browser(
      ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
       f"--use-file-for-fake-audio-capture={voice}"], performance_log=True)
  driver.network_events = []
  yield driver
  driver.quit()


def _open(driver, url):
  driver.network_events += driver.get_log("performance")
  driver.get(url)
  assert browser_lib.wait(driver, "return !!document.querySelector('#take input[type=file]')", 60)


def _upload(driver, element_id, path):
  driver.find_element("css selector", f"#{element_id} input[type=file]").send_keys(path)


def _wait_render(driver, previous_href=""):
  """Waits until the output player holds a new file or the page shows an error."""
  script = (OUTPUT_HREF.replace("return a ? a.href : '';", "") +
            f"const href = a ? a.href : ''; const s = document.querySelector('#status').innerText;"
            f"const m = document.querySelector('#metrics').innerText;"
            f"return (href && href !== {json.dumps(previous_href)} && m.includes('f0 error')) || "
            f"s.includes('Error:') || m.includes('Error:');")
  assert browser_lib.wait(driver, script, RENDER_TIMEOUT), "no render and no error in time"
  return driver.execute_script(OUTPUT_HREF)


def _duration_in_browser(driver, href) -> float:
  """The output file's duration as the browser decodes it (Web Audio)."""
  return driver.execute_async_script(
      "const done = arguments[arguments.length - 1];"
      "fetch(arguments[0]).then(r => r.arrayBuffer())"
      ".then(b => new OfflineAudioContext(1, 1, 16000).decodeAudioData(b))"
      ".then(a => done(a.duration)).catch(e => done('error: ' + e));", href)


def _f0_error(driver) -> float:
  match = re.search(r"f0 error ([\d.]+) cents", driver.execute_script(METRICS))
  assert match, driver.execute_script(METRICS)
  return float(match.group(1))


def test_upload_a_take_and_render_it_through_a_shipped_instrument(studio_server, page, corpus,
                                                                  tmp_path):
  url, _ = studio_server
  _open(page, url)
  take = os.path.join(corpus, "transfer", "trumpet_bb_march.wav")
  _upload(page, "take", take)
  href = _wait_render(page)
  assert "Error" not in page.execute_script(STATUS)
  assert "trumpet_bb_march.wav" in page.execute_script(STATUS)
  assert page.execute_script("return document.querySelector('#features img') !== null")
  assert abs(_duration_in_browser(page, href) - sf.info(take).duration) < 0.02
  assert _f0_error(page) < 50  # the violin plays the trumpet's line
  assert page.execute_script("return document.querySelector('#spectrograms img').naturalWidth") > 0
  page.find_element("css selector", "#add-to-batch").click()
  assert browser_lib.wait(page, "return document.querySelector('#batch textarea').value"
                                ".includes('[transfer]')")
  section = page.execute_script("return document.querySelector('#batch textarea').value")
  assert 'models = ["violin"]' in section and "threshold = 1.0" in section
  assert 'crepe_model = "tiny"' in section
  page.set_window_size(1366, page.execute_script("return document.body.scrollHeight") + 40)
  page.execute_script("window.scrollTo(0, 0);")
  shot = tmp_path / "studio.png"
  page.save_screenshot(str(shot))
  page.set_window_size(*browser_lib.WINDOW)
  assert shot.stat().st_size > 10_000


def test_record_from_the_microphone_and_transfer_the_recording(studio_server, page):
  url, _ = studio_server
  _open(page, url)
  page.find_element("css selector", "#take button[aria-label='Record audio']").click()
  assert browser_lib.wait(page, "return !!document.querySelector('#take button.record-button')")
  page.find_element("css selector", "#take button.record-button").click()
  time.sleep(3.0)
  page.find_element("css selector", "#take button.stop-button").click()
  href = _wait_render(page)
  assert "Error" not in page.execute_script(STATUS), page.execute_script(STATUS)
  seconds = _duration_in_browser(page, href)
  assert 2.0 < seconds < 6.0  # about the three seconds recorded
  assert _f0_error(page) < 50  # the fake microphone plays a sung line


def test_render_through_an_uploaded_model_zip_and_refuse_an_unsafe_one(studio_server, page,
                                                                       corpus, tmp_path):
  from jobs import train  # pylint: disable=g-import-not-at-top
  url, _ = studio_server
  model_dir = tmp_path / "fiddle"
  shutil.copytree(builtin_models.installed()["violin"], model_dir)
  zipped = train.export(str(model_dir), str(tmp_path / "saved"), str(tmp_path / "fiddle.zip"))
  _open(page, url)
  evil = tmp_path / "evil.zip"
  with zipfile.ZipFile(evil, "w") as z:
    z.writestr("../../escape.gin", "x = 1")
  _upload(page, "model-zip", str(evil))
  assert browser_lib.wait(page, "return document.querySelector('#status').innerText"
                                ".includes('leaves the archive')", 60), page.execute_script(STATUS)
  assert "evil.zip" in page.execute_script(STATUS)
  _open(page, url)
  _upload(page, "model-zip", zipped["zip"])
  assert browser_lib.wait(page, "return document.querySelector('#status').innerText"
                                ".includes('added')", 120), page.execute_script(STATUS)
  assert "fiddle" in page.find_element("css selector", "#model input").get_attribute("value")
  _upload(page, "take", os.path.join(corpus, "transfer", "trumpet_bb_march.wav"))  # analysed
  _wait_render(page)
  assert page.execute_script(METRICS).startswith("fiddle"), page.execute_script(METRICS)
  assert _f0_error(page) < 50


def test_a_bad_file_shows_its_error_and_a_good_one_still_renders(studio_server, page, corpus):
  url, _ = studio_server
  _open(page, url)
  _upload(page, "take", os.path.join(corpus, "bad", "f0_table_saved_as.wav"))
  assert browser_lib.wait(page, "return document.querySelector('#status').innerText"
                                ".includes('Error:')", 60), page.execute_script(STATUS)
  status = page.execute_script(STATUS)
  assert "f0_table_saved_as.wav" in status and "not a recognised audio file" in status
  _open(page, url)
  good = os.path.join(corpus, "bad", "Flûte traversière – étude n° 7 (Zoë) 长笛 ♫.wav")
  _upload(page, "take", good)
  href = _wait_render(page)
  assert "Error" not in page.execute_script(STATUS), page.execute_script(STATUS)
  assert abs(_duration_in_browser(page, href) - sf.info(good).duration) < 0.02


def test_no_request_leaves_127_0_0_1(studio_server, page):
  url, _ = studio_server
  _open(page, url)  # so that this test alone still loads the page once
  page.network_events += page.get_log("performance")
  host = url.split("/")[2]
  seen = set()
  for entry in page.network_events:
    message = json.loads(entry["message"])["message"]
    if message["method"] == "Network.requestWillBeSent":
      request = message["params"]["request"]["url"]
      if not request.startswith(("data:", "blob:")):
        seen.add(request.split("/")[2])
  assert seen == {host}, seen
