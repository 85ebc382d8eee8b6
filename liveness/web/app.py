"""The web app: a page for the webcam and uploads, a JSON API, one WebSocket per camera.

`create_app(model)` wraps one loaded model. Every piece of model work (decode, detect,
score, annotate) runs on ONE worker thread shared by all requests and connections:
the model and the detector are not thread-safe, and each connection has at most one
frame waiting for that thread, so connections take turns and a slow or silent client
holds nothing but its own socket. Each connection gets its own pipeline (tracking
state) from `pipeline_factory`; the model and detector inside are shared.

WebSocket /ws protocol (what static/app.js speaks):
  client -> server  binary: 4-byte big-endian frame id, then the JPEG (or PNG) bytes
  server -> client  text: {"id", "width", "height", "faces": [...], "threshold", "ms",
                    "dropped"} (+ "prompt", the first face's, when a face_extras hook gives
                    faces one), or {"id", "error"}
The newest frame wins: a frame that arrives while an older one still waits replaces
it (counted in "dropped"); nothing queues up.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import cv2
import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from liveness.web.media import (
    MediaError,
    check_size,
    decode_image,
    encode_jpeg,
    fit_within,
    video_suffix,
)

if TYPE_CHECKING:  # the challenge loads only with --challenge
    from liveness.challenge import ChallengeSettings

LOGGER = logging.getLogger("liveness")

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {  # route -> (file in static/, media type); read once, served from memory
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: blob:; media-src 'self' data: blob: mediastream:; "
        b"connect-src 'self' ws: wss:; frame-ancestors 'none'",
    ),
]
WS_POLICY_VIOLATION = 1008
WS_TRY_AGAIN_LATER = 1013
WS_GOING_AWAY = 1001
FRAME_ID_BYTES = 4
VIDEO_FOURCC = "VP80"  # WebM/VP8: every browser plays it, OpenCV's FFmpeg writes it
FALLBACK_VIDEO_FPS = 25.0


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server. Defaults are the script's defaults."""

    max_upload_bytes: int = 25 * 2**20  # one POSTed image or video
    max_frame_bytes: int = 2 * 2**20  # one WebSocket camera frame
    max_side: int = 8192  # pixels, either side of an image or video frame
    max_pixels: int = 40_000_000
    max_video_frames: int = 300  # frames scored per uploaded video (spread over it)
    video_side: int = 640  # longer side of the annotated video sent back
    max_clients: int = 8  # WebSocket connections at once
    max_videos: int = 2  # uploaded videos processed at once
    idle_timeout_s: float = 60.0  # a camera socket that sends nothing for this long is closed
    max_fps: float = 15.0  # the page sends at most this many frames a second


class _Latest:
    """A one-slot mailbox: put() replaces what was not taken yet (newest frame wins)."""

    def __init__(self) -> None:
        self._item: bytes | None = None
        self._ready = asyncio.Event()

    def put(self, item: bytes) -> bool:
        """Store `item`; True when it replaced a frame nobody had taken."""
        replaced = self._item is not None
        self._item = item
        self._ready.set()
        return replaced

    async def take(self) -> bytes:
        await self._ready.wait()
        self._ready.clear()
        item, self._item = self._item, None
        return item


class _Guard:
    """Pure ASGI middleware: security headers on every response; request bodies capped.

    A declared Content-Length over the cap is refused before the body is read; a body
    that grows past it while streaming raises MediaError(413) inside the endpoint.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            status = 413 if declared.isdigit() else 400
            await _send_json(send_with_headers, status, _too_large(self.max_bytes) if status == 413 else "bad Content-Length")
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise MediaError(_too_large(self.max_bytes), status=413)
            return message

        await self.app(scope, limited_receive, send_with_headers)


def _too_large(max_bytes: int) -> str:
    return f"upload too large: the limit is {max_bytes / 2**20:g} MiB"


async def _send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _plain(value: Any) -> Any:
    """JSON-safe copy: NumPy scalars and arrays, tuples -> Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def face_json(result: Any) -> dict:
    """One face as the API returns it: box, label, score, live, plus whatever else the
    pipeline's `as_json()` adds (track id, raw score, a challenge prompt...)."""
    extra = result.as_json() if hasattr(result, "as_json") else {}
    out = _plain(dict(extra))
    out.update(box=[int(v) for v in result.box], label=str(result.label),
               score=float(result.score), live=bool(result.live))
    return out


def model_name(model: Any) -> str:
    """The model folder's name (LivenessModel.name), for /healthz and the page."""
    name = getattr(model, "name", None)
    return str(name or Path(str(getattr(model, "path", "model"))).name)


def default_pipeline_factory(model: Any, detector: Any = None, **options: Any) -> Callable[[], Any]:
    """New `liveness.pipeline.Pipeline`s that all share `model` and one detector;
    `options` (detect_every, score_every, ...) go to each Pipeline."""
    from liveness.detector import FaceDetector
    from liveness.pipeline import Pipeline

    shared = detector if detector is not None else FaceDetector()
    return lambda: Pipeline(model, shared, **options)


class _VideoJob:
    """Scores an uploaded video one frame per call of step(), so that camera sockets
    get the worker between two frames of it. Writes the annotated WebM to `out`."""

    def __init__(self, src: Path, out: Path, pipe: Any, limits: Limits) -> None:
        self.cap = cv2.VideoCapture(str(src), cv2.CAP_FFMPEG)
        if not self.cap.isOpened():
            self.cap.release()
            raise MediaError("cannot open this video (corrupt, truncated or an unsupported codec)")
        width, height = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        check_size(width, height, max_side=limits.max_side, max_pixels=limits.max_pixels, what="video frame")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if math.isfinite(fps) and 0 < fps <= 240 else FALLBACK_VIDEO_FPS
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        # Spread the frame budget over the whole video (containers can misreport counts:
        # the budget also stops the loop).
        self.stride = max(1, math.ceil(count / limits.max_video_frames)) if count > 0 else 1
        self.pipe, self.limits, self.out = pipe, limits, out
        self.writer: cv2.VideoWriter | None = None
        self.index = -1
        self.frames: list[dict] = []

    def step(self) -> bool:
        """Read up to the next scored frame, score, annotate and write it; False at the end."""
        if len(self.frames) >= self.limits.max_video_frames:
            return False
        for _ in range(self.stride - 1):  # frames between two scored ones: grabbed, not decoded
            if not self.cap.grab():
                return False
            self.index += 1
        ok, frame = self.cap.read()
        if not ok or frame is None:
            return False
        self.index += 1
        check_size(frame.shape[1], frame.shape[0], max_side=self.limits.max_side,
                   max_pixels=self.limits.max_pixels, what="video frame")
        results = self.pipe.process(frame)
        image = fit_within(self.pipe.annotate(frame, results), self.limits.video_side)
        if self.writer is None:
            self.writer = cv2.VideoWriter(str(self.out), cv2.VideoWriter_fourcc(*VIDEO_FOURCC),
                                          self.fps / self.stride, (image.shape[1], image.shape[0]))
        self.writer.write(image)
        self.frames.append({"index": self.index, "time": round(self.index / self.fps, 3),
                            "faces": [face_json(r) for r in results]})
        return True

    def close(self) -> None:
        self.cap.release()
        if self.writer is not None:
            self.writer.release()


FaceExtras = Callable[[np.ndarray, list], list[dict]]  # (frame, results) -> one dict per face


def challenge_extras(kinds: tuple[str, ...], count: int, seed: int | None = None,
                     landmarker: Any = None, settings: ChallengeSettings | None = None) -> Callable[[], FaceExtras]:
    """`face_extras` for the active check (liveness/active.py): one ActiveCheck per camera
    connection, all sharing one landmark model (called on the worker thread only);
    `settings`: its ChallengeSettings (None: the defaults).

    Each face's JSON gains what the demo's JSON lines carry: "challenge" (its state),
    "prompt" (the instruction to show, or null), "passive_live", "decided_by", and "live"
    becomes the combined verdict (texture AND challenge).
    """
    import random

    from liveness.active import ActiveCheck
    from liveness.challenge import DEFAULT_SETTINGS, PROMPT_TEXT
    from liveness.landmarks import Landmarker

    shared = landmarker if landmarker is not None else Landmarker()
    seeds = random.Random(seed)

    def make() -> FaceExtras:
        check = ActiveCheck(kinds=kinds, count=count, rng=random.Random(seeds.random()), landmarker=shared,
                            settings=settings or DEFAULT_SETTINGS)
        start = time.monotonic()

        def extras(frame: np.ndarray, results: list) -> list[dict]:
            verdicts, _events = check.process(frame, results, time.monotonic() - start)
            return [{"challenge": v["challenge"], "prompt": PROMPT_TEXT[v["prompt"]] if v["prompt"] else None,
                     "passive_live": bool(r.live), "live": bool(v["live"]), "decided_by": v["decided_by"]}
                    for r, v in zip(results, verdicts)]

        return extras

    return make


def create_app(
    model: Any,
    *,
    pipeline_factory: Callable[[], Any] | None = None,
    detector: Any = None,
    limits: Limits | None = None,
    face_extras: Callable[[], FaceExtras] | None = None,
):
    """The FastAPI app around one loaded model.

    pipeline_factory: makes one pipeline (process / annotate / reset) per connection or
    request; by default `liveness.pipeline.Pipeline(model, detector)` with one shared
    `FaceDetector` (or `detector`).
    face_extras: the hook for an active challenge; makes, per camera connection, a
    callable run on the worker after the pipeline on each frame, returning one dict per
    face merged into that face's JSON (e.g. {"prompt": "Blink", "live": False, ...}).
    The page draws a face's "prompt" under its box and as a banner.
    """
    limits = limits or Limits()
    factory = pipeline_factory or default_pipeline_factory(model, detector)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="liveness-model")
    video_slots = asyncio.Semaphore(limits.max_videos)
    pages = {route: ((STATIC / name).read_bytes(), kind) for route, (name, kind) in PAGES.items()}
    threshold = float(model.threshold)
    clients = 0

    @asynccontextmanager
    async def lifespan(_app):
        yield
        worker.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="Face liveness", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_Guard, max_bytes=limits.max_upload_bytes)
    app.state.limits = limits
    app.state.model = model

    async def in_worker(fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(worker, fn)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(MediaError)
    async def _media_error(_request, exc: MediaError):
        return error(exc.status, str(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(_request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(400, f"bad request: {where} {first.get('msg', '')}".strip())

    @app.exception_handler(Exception)
    async def _internal_error(_request, exc: Exception):
        LOGGER.error("internal error: %s: %s", type(exc).__name__, exc)
        return error(500, "internal error")

    for route, (body, kind) in pages.items():
        app.add_api_route(route, (lambda body=body, kind=kind: Response(body, media_type=kind)),
                          methods=["GET"], include_in_schema=False)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "model": model_name(model), "scorer": getattr(model, "scorer", None),
                "threshold": threshold, "live_label": getattr(model, "live_label", None),
                "limits": asdict(limits)}

    async def read_file_field(request: Request) -> bytes:
        form = await request.form(max_files=1, max_fields=8)
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise MediaError('send the file as the multipart form field "file"')
            data = await upload.read()
        finally:
            await form.close()
        if not data:
            raise MediaError("the uploaded file is empty")
        return data

    @app.post("/api/predict")
    async def predict(request: Request, annotate: bool = False) -> dict:
        """Faces and verdicts for one image; with ?annotate=true also the annotated JPEG."""
        data = await read_file_field(request)
        pipe = factory()  # a still image has no history: a fresh pipeline each time

        def job():
            start = time.perf_counter()
            frame = decode_image(data, max_side=limits.max_side, max_pixels=limits.max_pixels)
            results = pipe.process(frame)
            ms = (time.perf_counter() - start) * 1000
            image = encode_jpeg(pipe.annotate(frame, results)) if annotate else None
            return frame.shape, results, ms, image

        shape, results, ms, image = await in_worker(job)
        body = {"faces": [face_json(r) for r in results], "threshold": threshold, "ms": round(ms, 2),
                "width": shape[1], "height": shape[0]}
        if image is not None:
            body["image"] = "data:image/jpeg;base64," + base64.b64encode(image).decode()
        return body

    @app.post("/api/predict_video")
    async def predict_video(request: Request) -> dict:
        """Every scored frame's faces, a summary, and the annotated video (WebM, data URL)."""
        data = await read_file_field(request)
        suffix = video_suffix(data)
        async with video_slots:
            start = time.perf_counter()
            # The upload needs a file for FFmpeg: a private temporary folder, removed on
            # the way out whatever happens; the names inside are ours, never the client's.
            with tempfile.TemporaryDirectory(prefix="liveness-web-") as tmp:
                src, out = Path(tmp) / f"upload{suffix}", Path(tmp) / "annotated.webm"
                await asyncio.to_thread(src.write_bytes, data)
                job = await in_worker(lambda: _VideoJob(src, out, factory(), limits))
                try:
                    while await in_worker(job.step):
                        pass
                finally:
                    await in_worker(job.close)
                if not job.frames:
                    raise MediaError("no frame of this video could be decoded")
                video = await asyncio.to_thread(out.read_bytes) if out.is_file() else b""
        labels = [f["label"] for frame in job.frames for f in frame["faces"]]
        return {
            "frames": job.frames, "threshold": threshold, "ms": round((time.perf_counter() - start) * 1000, 2),
            "frames_scored": len(job.frames), "stride": job.stride,
            "summary": {label: labels.count(label) for label in sorted(set(labels))},
            "video": ("data:video/webm;base64," + base64.b64encode(video).decode()) if video else None,
        }

    @app.websocket("/ws")
    async def camera(ws: WebSocket) -> None:
        nonlocal clients
        origin = ws.headers.get("origin")
        if origin and urlsplit(origin).netloc != ws.headers.get("host", ""):
            await ws.close(code=WS_POLICY_VIOLATION)  # another site's page: refused at the handshake
            return
        await ws.accept()
        if clients >= limits.max_clients:
            await ws.close(code=WS_TRY_AGAIN_LATER, reason="too many connections")
            return
        clients += 1
        try:
            await _serve_camera(ws, factory(), face_extras() if face_extras else None)
        finally:
            clients -= 1

    async def _serve_camera(ws: WebSocket, pipe: Any, extras: FaceExtras | None) -> None:
        latest = _Latest()
        dropped = 0

        async def receive() -> None:
            nonlocal dropped
            while True:
                try:
                    message = await asyncio.wait_for(ws.receive(), limits.idle_timeout_s)
                except TimeoutError:
                    await ws.close(code=WS_GOING_AWAY, reason="idle")
                    return
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:  # text frames carry nothing in this protocol
                    continue
                if latest.put(data):
                    dropped += 1

        async def answer() -> None:
            while True:
                data = await latest.take()
                reply = await _camera_frame(pipe, extras, data)
                reply["dropped"] = dropped
                await ws.send_text(json.dumps(reply))

        tasks = {asyncio.create_task(receive()), asyncio.create_task(answer())}
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, (WebSocketDisconnect, RuntimeError, OSError)):
                LOGGER.error("camera socket: %s: %s", type(exc).__name__, exc)

    async def _camera_frame(pipe: Any, extras: FaceExtras | None, data: bytes) -> dict:
        if len(data) <= FRAME_ID_BYTES:
            return {"id": None, "error": "a frame is a 4-byte id followed by a JPEG"}
        frame_id = int.from_bytes(data[:FRAME_ID_BYTES], "big")
        if len(data) > limits.max_frame_bytes:
            return {"id": frame_id, "error": _too_large(limits.max_frame_bytes)}

        def job():
            start = time.perf_counter()
            frame = decode_image(data[FRAME_ID_BYTES:], max_side=limits.max_side, max_pixels=limits.max_pixels)
            results = pipe.process(frame)
            faces = [face_json(r) for r in results]
            if extras is not None:
                for face, extra in zip(faces, extras(frame, results)):
                    face.update(_plain(extra))
            return frame.shape, faces, (time.perf_counter() - start) * 1000

        try:
            shape, faces, ms = await in_worker(job)
        except MediaError as e:
            return {"id": frame_id, "error": str(e)}
        except Exception as e:  # a frame the pipeline chokes on must not end the stream
            LOGGER.error("camera frame %d: %s: %s", frame_id, type(e).__name__, e)
            return {"id": frame_id, "error": "internal error"}
        reply = {"id": frame_id, "width": shape[1], "height": shape[0], "faces": faces,
                 "threshold": threshold, "ms": round(ms, 2)}
        prompt = next((f["prompt"] for f in faces if f.get("prompt")), None)
        if prompt:  # the challenge's instruction ("Blink", "Turn your head left"...)
            reply["prompt"] = str(prompt)
        return reply

    return app
