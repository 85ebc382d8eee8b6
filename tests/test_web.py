"""The web app (liveness/web/): JSON API, WebSocket camera protocol, and the page in a real
Chromium fed a shared video as its fake camera.

The app runs the package's own Pipeline on the default model (colour LBP) that
conftest trains on the shared crops; its verdicts are checked against the same
Pipeline run directly on the same pixels.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from liveness import LIVE_LABEL, SPOOF_LABEL
from liveness.model import load_model
from liveness.pipeline import Pipeline
from liveness.web.app import Limits, create_app


SHARED_VIDEO = Path("videos") / "subject02" / "real.mp4"  # one face in every frame, 1080x720
SHARED_CROP = Path("crops") / "subject08" / "real" / "30.png"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google's hosts,
# which this machine's closed network refuses.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]
UPLOAD_CAP = 1 << 20  # small limits, so the oversized upload stays small
TEST_LIMITS = Limits(max_upload_bytes=UPLOAD_CAP, max_frame_bytes=UPLOAD_CAP, max_video_frames=8, max_clients=3)


# --- the real model and pipeline ---------------------------------------------------------

class SlowPipeline:
    """The real pipeline, made slower than a camera (for the newest-frame-wins tests)."""

    def __init__(self, pipe: Pipeline, delay_s: float) -> None:
        self.pipe, self.delay_s = pipe, delay_s

    def process(self, frame):
        time.sleep(self.delay_s)
        return self.pipe.process(frame)

    def __getattr__(self, name):
        return getattr(self.pipe, name)


@pytest.fixture(scope="module")
def detector():
    from liveness.detector import FaceDetector

    return FaceDetector()


@pytest.fixture(scope="module")
def model(lbp_model):
    """The default model (colour LBP), trained on the shared crops by conftest."""
    return load_model(lbp_model)


def make_client(model, detector, *, delay_s=0.0, limits=TEST_LIMITS) -> TestClient:
    factory = (lambda: SlowPipeline(Pipeline(model, detector), delay_s)) if delay_s else None
    app = create_app(model, detector=detector, pipeline_factory=factory, limits=limits)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(model, detector):
    with make_client(model, detector) as c:
        yield c


# --- shared data -------------------------------------------------------------------------

def read_frames(path: Path, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def crop_png(shared_data) -> bytes:
    """A shared face crop on a grey margin (the SSD needs some context around a face)."""
    crop = cv2.imread(str(shared_data / SHARED_CROP))
    h, w = crop.shape[:2]
    framed = cv2.copyMakeBorder(crop, h // 2, h // 2, w // 2, w // 2, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    return cv2.imencode(".png", framed)[1].tobytes()


@pytest.fixture(scope="module")
def frame_jpeg(shared_data) -> bytes:
    (frame,) = read_frames(shared_data / SHARED_VIDEO, 1)
    return cv2.imencode(".jpg", frame)[1].tobytes()


def post(client, data: bytes, name="face.jpg", kind="image/jpeg", url="/api/predict"):
    return client.post(url, files={"file": (name, data, kind)})


def expected_faces(model, detector, data: bytes) -> list[dict]:
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return [{"label": r.label, "live": r.live, "box": list(r.box), "score": r.score}
            for r in Pipeline(model, detector).process(frame)]


def check_faces(faces: list[dict], expected: list[dict]) -> None:
    assert len(faces) == len(expected) >= 1
    for got, want in zip(faces, expected):
        assert got["label"] == want["label"] and got["live"] == want["live"] and got["box"] == want["box"]
        assert got["score"] == pytest.approx(want["score"], abs=1e-9)
        assert got["live"] == (got["label"] == LIVE_LABEL)
        assert {"box", "label", "score", "live"} <= got.keys()


# --- JSON API ----------------------------------------------------------------------------

def test_healthz_names_the_model_and_threshold(client, model):
    body = client.get("/healthz").json()
    assert body["model"] == model.name == "liveness" and body["threshold"] == model.threshold
    assert body["scorer"] == "lbp" and body["live_label"] == LIVE_LABEL
    assert body["limits"]["max_upload_bytes"] == UPLOAD_CAP


def test_predict_a_shared_crop(client, model, detector, crop_png):
    r = post(client, crop_png, "crop.png", "image/png")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"faces", "threshold", "ms"} and body["threshold"] == model.threshold and body["ms"] >= 0
    check_faces(body["faces"], expected_faces(model, detector, crop_png))  # PNG: lossless, same pixels


def test_predict_a_shared_video_frame_annotated(client, model, detector, frame_jpeg):
    r = client.post("/api/predict?annotate=true", files={"file": ("frame.jpg", frame_jpeg, "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    check_faces(body["faces"], expected_faces(model, detector, frame_jpeg))
    head, b64 = body["image"].split(",", 1)
    assert head == "data:image/jpeg;base64"
    image = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (body["height"], body["width"]) == (720, 1080)


def png_header(width: int, height: int) -> bytes:
    """A PNG that is all header: it claims width x height and holds no pixels."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


BAD_REQUESTS = {
    # name: (what is posted, expected status)
    "text file": (lambda jpg: (b"name,score\nalice,0.9\n", "notes.txt", "text/plain"), 400),
    "truncated JPEG": (lambda jpg: (jpg[: len(jpg) // 2], "cut.jpg", "image/jpeg"), 400),
    "20000x20000 PNG header": (lambda jpg: (png_header(20000, 20000), "huge.png", "image/png"), 400),
    "oversized upload": (lambda jpg: (b"\xff\xd8" + bytes(UPLOAD_CAP), "big.jpg", "image/jpeg"), 413),
    "empty file": (lambda jpg: (b"", "empty.jpg", "image/jpeg"), 400),
    "JPEG header only": (lambda jpg: (jpg[:600], "head.jpg", "image/jpeg"), 400),
    "video to the image endpoint": (lambda jpg: (b"\x00\x00\x00\x18ftypmp42" + bytes(64), "a.mp4", "video/mp4"), 400),
}


def check_error(r, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and body["error"] and "Traceback" not in r.text
    return body["error"]


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_uploads_get_a_clean_4xx_json(client, frame_jpeg, name):
    make, status = BAD_REQUESTS[name]
    message = check_error(post(client, *make(frame_jpeg)), status)
    if status == 413:
        assert "MiB" in message


def test_an_oversized_body_without_content_length_is_refused_while_streaming(client):
    def chunks():  # no Content-Length: the cap must hold as the body streams in
        for _ in range(4):
            yield bytes(UPLOAD_CAP // 2)

    r = client.post("/api/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    check_error(r, 413)


def test_other_bad_requests(client, frame_jpeg):
    check_error(client.post("/api/predict", data={"file": "not a file"}), 400)
    check_error(client.post("/api/predict", files={"other": ("a.jpg", frame_jpeg, "image/jpeg")}), 400)
    check_error(client.post("/api/predict?annotate=maybe", files={"file": ("a.jpg", frame_jpeg, "image/jpeg")}), 400)
    check_error(client.get("/static/../../etc/passwd"), 404)
    check_error(client.get("/api/predict"), 405)


def test_page_and_assets_are_served_from_memory_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and 'src="/static/app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/static/app.js", "/static/style.css"):
        r = client.get(asset)
        assert r.status_code == 200 and r.text.strip()
    assert "http" not in client.get("/static/app.js").text.replace("https:", "")  # nothing from a CDN


def write_clip(frames: list[np.ndarray], path: Path, fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_video_upload_scores_frames_and_cleans_its_temporary_folder(model, detector, shared_data, tmp_path, monkeypatch):
    import tempfile

    frames = [cv2.resize(f, (540, 360)) for f in read_frames(shared_data / SHARED_VIDEO, 20)]
    clip = write_clip(frames, tmp_path / "clip.avi").read_bytes()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with make_client(model, detector) as client:
        r = post(client, clip, "clip.avi", "video/x-msvideo", url="/api/predict_video")
        assert r.status_code == 200, r.text
        body = r.json()
        # 20 frames, a budget of 8: every 3rd frame scored (the 3rd, 6th, ... 18th)
        assert body["stride"] == 3 and body["frames_scored"] == 6
        assert [f["index"] for f in body["frames"]] == [2, 5, 8, 11, 14, 17]
        assert all(len(f["faces"]) == 1 for f in body["frames"])
        assert sum(body["summary"].values()) == 6
        head, b64 = body["video"].split(",", 1)
        assert head == "data:video/webm;base64" and base64.b64decode(b64)[:4] == b"\x1a\x45\xdf\xa3"
        # the upload and the annotated video lived in a temporary folder, now gone
        assert list(scratch.iterdir()) == []
        check_error(post(client, clip[:2000], "cut.avi", "video/x-msvideo", url="/api/predict_video"), 400)
        check_error(post(client, b"#EXTM3U\nfile:///etc/passwd\n", "list.m3u8", "video/mp4", url="/api/predict_video"), 400)
        assert list(scratch.iterdir()) == []


# --- WebSocket camera protocol -------------------------------------------------------------

def frame_message(frame_id: int, data: bytes) -> bytes:
    return frame_id.to_bytes(4, "big") + data


def test_websocket_answers_each_frame_and_survives_a_bad_one(client, model, detector, frame_jpeg):
    with client.websocket_connect("/ws") as ws:
        ws.send_bytes(frame_message(1, frame_jpeg))
        first = ws.receive_json()
        assert first["id"] == 1 and first["width"] == 1080 and first["threshold"] == model.threshold
        check_faces(first["faces"], expected_faces(model, detector, frame_jpeg))
        ws.send_bytes(frame_message(2, b"this is not a JPEG"))
        assert ws.receive_json() == {"id": 2, "error": "not an image this server reads (JPEG or PNG)", "dropped": 0}
        ws.send_bytes(frame_message(3, frame_jpeg))
        assert ws.receive_json()["id"] == 3


def test_newest_frame_wins_when_the_server_is_slower_than_the_camera(model, detector, frame_jpeg):
    with make_client(model, detector, delay_s=0.3) as client, client.websocket_connect("/ws") as ws:
        sent = 6
        for frame_id in range(1, sent + 1):  # all at once: faster than 0.3 s a frame
            ws.send_bytes(frame_message(frame_id, frame_jpeg))
        answers = [ws.receive_json()]
        while answers[-1]["id"] != sent:
            answers.append(ws.receive_json())
    ids = [a["id"] for a in answers]
    assert ids == sorted(set(ids))  # never an older frame after a newer one
    assert answers[-1]["dropped"] >= 1 and len(answers) + answers[-1]["dropped"] == sent


def test_a_silent_socket_does_not_hold_the_model_and_clients_are_capped(model, detector, frame_jpeg):
    with make_client(model, detector, delay_s=0.05) as client:
        with client.websocket_connect("/ws") as silent, client.websocket_connect("/ws") as busy:
            silent.send_bytes(frame_message(1, frame_jpeg))  # its answer is never read
            for frame_id in range(1, 4):
                busy.send_bytes(frame_message(frame_id, frame_jpeg))
                assert busy.receive_json()["id"] == frame_id
            with client.websocket_connect("/ws") as third:
                third.send_bytes(frame_message(1, frame_jpeg))
                assert third.receive_json()["id"] == 1
                from starlette.websockets import WebSocketDisconnect

                with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws") as fourth:
                    fourth.receive_json()
                assert refused.value.code == 1013  # max_clients=3


def test_websocket_from_another_site_is_refused(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(
        "/ws", headers={"origin": "http://evil.example"}
    ) as ws:
        ws.receive_json()
    assert refused.value.code == 1008


# --- a real browser -----------------------------------------------------------------------

def write_y4m(frames: list[np.ndarray], path: Path, fps: int) -> Path:
    """Raw YUV4MPEG2 (4:2:0), what Chromium's fake camera plays in a loop."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())  # Y, then U, then V planes
    return path


class ServerThread:
    """uvicorn on 127.0.0.1 and a free port, in a thread of this process."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws_max_size=UPLOAD_CAP))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def browser_or_skip():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    return pytest.importorskip("playwright.sync_api")


@pytest.mark.slow
def test_the_page_in_chromium_shows_video_boxes_and_the_servers_labels(model, detector, shared_data, tmp_path):
    sync_api = browser_or_skip()
    frames = [cv2.resize(f, (480, 320), interpolation=cv2.INTER_AREA) for f in read_frames(shared_data / SHARED_VIDEO, 45)]
    clip = write_y4m(frames, tmp_path / "camera.y4m", fps=15)
    app = create_app(model, detector=detector, limits=TEST_LIMITS)
    sent_by_server: dict[int, dict] = {}

    def on_websocket(ws) -> None:
        def record(payload) -> None:
            message = json.loads(payload)
            sent_by_server[message["id"]] = message

        ws.on("framereceived", record)

    with ServerThread(app) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={clip}"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 760})
            page.on("websocket", on_websocket)
            start = time.monotonic()
            page.goto(url)
            page.wait_for_function("() => window.liveness && window.liveness.rendered >= 5 && window.liveness.last.faces.length > 0",
                                   timeout=30_000)
            seconds = time.monotonic() - start
            shown = page.evaluate("""() => {
                const video = document.getElementById('video');
                const canvas = document.getElementById('overlay');
                const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                let boxPixels = 0;
                for (let i = 0; i < px.length; i += 4) {
                    const g = px[i] === 0 && px[i + 1] === 255 && px[i + 2] === 0;
                    const r = px[i] === 255 && px[i + 1] === 0 && px[i + 2] === 0;
                    if ((g || r) && px[i + 3] === 255) boxPixels++;
                }
                return {id: window.liveness.last.id, labels: window.liveness.shown,
                        listed: [...document.querySelectorAll('#verdicts li')].map(li => li.dataset.label),
                        listFrame: Number(document.getElementById('verdicts').dataset.frame),
                        videoWidth: video.videoWidth, videoTime: video.currentTime, boxPixels,
                        sent: window.liveness.sent, errors: window.liveness.errors};
            }""")
            page.screenshot(path=str(tmp_path / "page.png"))
            # the upload tab: an image in, the annotated image and the verdicts out
            still = tmp_path / "frame.png"
            cv2.imwrite(str(still), frames[0])
            page.click("#tab-upload")
            page.set_input_files("#file", str(still))
            page.wait_for_selector("#result-image:not([hidden])", timeout=30_000)
            uploaded = page.evaluate("""() => ({status: document.getElementById('upload-status').textContent,
                                                 width: document.getElementById('result-image').naturalWidth,
                                                 camera: window.liveness.sent})""")
            page.screenshot(path=str(tmp_path / "upload.png"))
        finally:
            browser.close()

    print(f"page: first labels after {seconds:.1f} s, {shown['sent']} frames sent, screenshot {tmp_path / 'page.png'}")
    assert shown["videoWidth"] == 480 and shown["videoTime"] > 0  # the fake camera plays our clip
    assert shown["errors"] == 0 and shown["boxPixels"] > 100  # boxes drawn in the verdict colours
    deadline = time.monotonic() + 5  # Playwright's event for the last message may trail the page
    while shown["id"] not in sent_by_server and time.monotonic() < deadline:
        time.sleep(0.1)
    answer = sent_by_server[shown["id"]]
    server_labels = [face["label"] for face in answer["faces"]]
    assert shown["labels"] == shown["listed"] == server_labels and shown["listFrame"] == shown["id"]
    assert all(label in (LIVE_LABEL, SPOOF_LABEL) for label in server_labels)
    expected = expected_faces(model, detector, cv2.imencode(".png", frames[0])[1].tobytes())
    assert uploaded["width"] == 480 and uploaded["status"].startswith(f"{expected[0]['label']} {expected[0]['score']:.2f}")
    screenshot = cv2.imread(str(tmp_path / "page.png"))
    assert screenshot is not None and screenshot.std() > 10  # not a blank page


# --- the script -------------------------------------------------------------------------------

def test_script_listens_on_loopback_by_default():
    import liveness_web

    opt = liveness_web.parse_opt(["--model", "m"])
    assert opt.host == "127.0.0.1" and opt.port == 8000


def run_script(*argv, timeout=60):
    import subprocess
    import sys

    from liveness import ROOT

    return subprocess.run([sys.executable, str(ROOT / "liveness_web.py"), *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("argv", [["--port", "70000"], ["--max-fps", "0"], ["--max-upload-mb", "-1"],
                                  ["--max-upload-mb", "inf"], ["--confidence", "2"]])
def test_script_refuses_bad_numbers_before_starting(argv, capsys):
    import liveness_web

    with pytest.raises(SystemExit) as refused:
        liveness_web.parse_opt(["--model", "nowhere", *argv])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and "error: argument " in err and argv[0] in err


@pytest.mark.parametrize("argv, message", [
    (["--model", "nowhere"], "nowhere"),
    (["--model", "nowhere", "--ssl-certfile", "cert.pem"], "--ssl-keyfile"),
    (["--model", "nowhere", "--port", "BUSY"], "cannot listen on 127.0.0.1:"),
])
def test_script_errors_are_one_line(argv, message):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        argv = [str(busy.getsockname()[1]) if a == "BUSY" else a for a in argv]
        done = run_script(*argv)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and lines[-1].startswith("[ERROR] ") and message in lines[-1], done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_script_serves_the_model_until_interrupted(lbp_model, frame_jpeg):
    import re
    import signal
    import subprocess
    import sys

    import httpx

    from liveness import ROOT

    proc = subprocess.Popen([sys.executable, str(ROOT / "liveness_web.py"), "--model", str(lbp_model), "--port", "0"],
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        url = None
        for line in proc.stderr:  # its log says where it listens
            found = re.search(r"serving (http://127\.0\.0\.1:\d+)/", line)
            if found:
                url = found.group(1)
                break
        assert url, "the script never said where it listens"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{url}/healthz", timeout=5).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert health["model"] == "liveness" and health["limits"]["max_clients"] == Limits().max_clients
        r = httpx.post(f"{url}/api/predict", files={"file": ("f.jpg", frame_jpeg, "image/jpeg")}, timeout=30)
        assert r.status_code == 200 and len(r.json()["faces"]) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[1]
    from liveness.cli import EXIT_INTERRUPTED

    assert proc.returncode == EXIT_INTERRUPTED and "Traceback" not in rest, rest  # Ctrl-C ends it as every script


def test_a_challenge_hook_adds_prompts_to_the_camera_answers(model, detector, frame_jpeg):
    seen = []

    def make_extras():  # per connection, like a challenge's per-face state
        def extras(frame, results):
            seen.append(frame.shape)
            return [{"prompt": "Blink", "live": False, "challenge": "prompted"} for _ in results]

        return extras

    app = create_app(model, detector=detector, limits=TEST_LIMITS, face_extras=make_extras)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_bytes(frame_message(1, frame_jpeg))
        answer = ws.receive_json()
    assert answer["prompt"] == "Blink" and seen == [(720, 1080, 3)]
    (face,) = answer["faces"]
    assert face["prompt"] == "Blink" and face["live"] is False and face["challenge"] == "prompted"
    assert face["label"] in (LIVE_LABEL, SPOOF_LABEL)


@pytest.mark.slow
def test_the_load_benchmark_runs_and_checks_order(lbp_model):
    """benchmarks/bench_web.py on a few frames: it must not rot (nothing here is timed)."""
    import subprocess
    import sys

    from liveness import ROOT

    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_web.py"), "--model", str(lbp_model),
                           "--frames", "6", "--clients", "2", "--timeout", "120"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith(("lockstep ", "camera "))]
    assert [(r[0], r[1], r[2]) for r in rows] == [("lockstep", "1", "6"), ("lockstep", "2", "12"),
                                                  ("camera", "1", "6"), ("camera", "2", "12")]
    assert all(r[5] == "0" and r[6] == "yes" for r in rows)  # no error, answers in order, last frame answered


@pytest.mark.slow
def test_the_active_check_on_camera_connections(model, detector, shared_data):
    """--challenge: the real landmark model and challenge per connection; a face is live
    only once its challenge passed, which three frames cannot do."""
    from liveness.web.app import challenge_extras

    frames = read_frames(shared_data / SHARED_VIDEO, 3)
    app = create_app(model, detector=detector, limits=TEST_LIMITS,
                     face_extras=challenge_extras(("blink",), 1, seed=1))
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        answers = []
        for frame_id, frame in enumerate(frames, 1):
            ws.send_bytes(frame_message(frame_id, cv2.imencode(".jpg", frame)[1].tobytes()))
            answers.append(ws.receive_json())
    for answer in answers:
        (face,) = answer["faces"]
        assert face["challenge"] == "pending" and face["passive_live"] == (face["label"] == LIVE_LABEL)
        assert face["live"] is False and face["decided_by"] == ("challenge" if face["passive_live"] else "passive")


def test_script_challenge_kinds_are_checked(capsys):
    import liveness_web

    assert liveness_web.parse_opt(["--challenge"]).challenge == ("blink", "left", "right")
    assert liveness_web.parse_opt(["--challenge", "blink"]).challenge == ("blink",)
    with pytest.raises(SystemExit):
        liveness_web.parse_opt(["--challenge", "wink"])
    assert "wink" in capsys.readouterr().err

