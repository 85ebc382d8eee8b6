"""The web server under load: 1 and then 4 WebSocket cameras at once, against 127.0.0.1.

Usage:
    python benchmarks/bench_web.py                          # trains a small model first (about a minute)
    python benchmarks/bench_web.py --model output/liveness --frames 200 --clients 4

Each client streams --frames JPEG frames of a shared video (640 px on the longer
side, as the page sends them) to /ws, in two ways:
  lockstep  as the page does: send a frame, wait for its answer, send the next
  camera    a camera that never waits: a frame every 1/--camera-fps s, answers read
            as they come; the server keeps only the newest waiting frame
Printed per way and client count: frames answered and dropped, round-trip latency
p50/p95 (send -> answer, answered frames only) and server FPS (answers a second,
all clients together). Checked, not timed: no error, every client's answers come in
increasing frame order (never a frame older than one already answered), and the
last frame each camera sent is answered. The 1-client and 4-client runs use the same
server, model and frames in one process, so their ratio is what to read; the
absolute figures depend on the machine. The server runs in a thread of this process
(uvicorn); the clients share the event loop of the main thread.

Bounded: every run stops after its frames, or after --timeout seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_web.py`
    sys.path.insert(0, str(ROOT))

from liveness.cli import UserError, cli_main, setup_logging  # noqa: E402

LOGGER = logging.getLogger("liveness")
SHARED_DATA = ROOT.parent / "shared" / "data"
DEFAULT_VIDEO = SHARED_DATA / "videos" / "subject02" / "real.mp4"
SEND_SIDE = 640  # as static/app.js sends frames
JPEG_QUALITY = 80


@dataclass
class ClientStats:
    sent: dict[int, float] = field(default_factory=dict)  # frame id -> send time
    latencies: list[float] = field(default_factory=list)  # seconds, answered frames
    answered: list[int] = field(default_factory=list)  # ids in the order answered
    errors: list[str] = field(default_factory=list)
    dropped: int = 0
    first_send: float = 0.0
    last_answer: float = 0.0


def load_frames(video: Path, count: int) -> list[bytes]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        scale = min(1.0, SEND_SIDE / max(h, w))
        frame = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        frames.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes())
    cap.release()
    if not frames:
        raise UserError(f"no frames in {video}")
    return frames


class ServerThread:
    """uvicorn on 127.0.0.1 and a free port, in a thread of this process."""

    def __init__(self, app, ws_max_size: int) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws_max_size=ws_max_size, log_config=None))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the web server did not start")
            time.sleep(0.05)
        return f"ws://127.0.0.1:{self.port}/ws"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def _on_answer(stats: ClientStats, text: str) -> int | None:
    now = time.perf_counter()
    answer = json.loads(text)
    if "error" in answer:
        stats.errors.append(str(answer["error"]))
    frame_id = answer.get("id")
    if frame_id is not None:
        stats.answered.append(frame_id)
        stats.latencies.append(now - stats.sent[frame_id])
        stats.dropped = answer.get("dropped", stats.dropped)
        stats.last_answer = now
    return frame_id


async def lockstep_client(url: str, frames: list[bytes], count: int) -> ClientStats:
    from websockets.asyncio.client import connect

    stats = ClientStats()
    async with connect(url, max_size=None) as ws:
        stats.first_send = time.perf_counter()
        for frame_id in range(1, count + 1):
            stats.sent[frame_id] = time.perf_counter()
            await ws.send(frame_id.to_bytes(4, "big") + frames[(frame_id - 1) % len(frames)])
            _on_answer(stats, await ws.recv())
    return stats


async def camera_client(url: str, frames: list[bytes], count: int, fps: float) -> ClientStats:
    from websockets.asyncio.client import connect

    stats = ClientStats()
    async with connect(url, max_size=None) as ws:

        async def read() -> None:
            while True:  # until the last frame sent is answered
                if _on_answer(stats, await ws.recv()) == count:
                    return

        reader = asyncio.create_task(read())
        stats.first_send = start = time.perf_counter()
        for frame_id in range(1, count + 1):
            await asyncio.sleep(max(0.0, start + (frame_id - 1) / fps - time.perf_counter()))
            stats.sent[frame_id] = time.perf_counter()
            await ws.send(frame_id.to_bytes(4, "big") + frames[(frame_id - 1) % len(frames)])
        await reader
    return stats


async def one_run(url: str, frames: list[bytes], *, clients: int, count: int, way: str, fps: float, timeout: float) -> dict:
    if way == "lockstep":
        jobs = [lockstep_client(url, frames, count) for _ in range(clients)]
    else:
        jobs = [camera_client(url, frames, count, fps) for _ in range(clients)]
    try:
        results = await asyncio.wait_for(asyncio.gather(*jobs), timeout)
    except TimeoutError:
        raise UserError(f"{way} with {clients} clients did not finish within {timeout:g} s (--timeout)") from None
    latencies = sorted(x for r in results for x in r.latencies)
    answered = sum(len(r.answered) for r in results)
    span = max(r.last_answer for r in results) - min(r.first_send for r in results)
    in_order = all(r.answered == sorted(set(r.answered)) for r in results)
    last_answered = all(r.answered and r.answered[-1] == count for r in results)
    errors = [e for r in results for e in r.errors]
    return {
        "way": way, "clients": clients, "sent": clients * count, "answered": answered,
        "dropped": sum(r.dropped for r in results), "errors": len(errors), "first_error": errors[0] if errors else None,
        "in_order": in_order, "last_answered": last_answered,
        "p50_ms": 1000 * statistics.median(latencies), "p95_ms": 1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "server_fps": answered / span if span > 0 else float("nan"),
    }


def make_model(folder: Path):
    """A small colour-LBP model trained on the shared crops (speed does not depend on accuracy)."""
    import train
    from liveness.model import load_model

    if not (SHARED_DATA / "crops").is_dir():
        raise UserError(f"no --model given and no {SHARED_DATA / 'crops'} to train one on")
    model = folder / "liveness"
    train.run(dataset=[SHARED_DATA / "crops"], model=model, group_pattern=r"subject\d+", seed=1)
    return load_model(model)


def run(*, model: Path | None = None, video: Path = DEFAULT_VIDEO, frames: int = 200, clients: int = 4,
        camera_fps: float = 30.0, timeout: float = 300.0) -> int:
    from liveness.model import load_model
    from liveness.web.app import Limits, create_app

    if frames < 1 or clients < 1 or camera_fps <= 0 or timeout <= 0:
        raise UserError("--frames, --clients, --camera-fps and --timeout must be more than 0")
    if not Path(video).is_file():
        raise UserError(f"video {video} does not exist")
    jpegs = load_frames(Path(video), frames)
    limits = Limits(max_clients=max(clients, Limits().max_clients))
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        loaded = load_model(model) if model else make_model(Path(tmp))
        app = create_app(loaded, limits=limits)
        rows = []
        with ServerThread(app, limits.max_frame_bytes) as url:
            asyncio.run(one_run(url, jpegs, clients=1, count=min(frames, 10), way="lockstep", fps=camera_fps, timeout=timeout))  # warm-up
            for way in ("lockstep", "camera"):
                for n in sorted({1, clients}):
                    row = asyncio.run(one_run(url, jpegs, clients=n, count=frames, way=way, fps=camera_fps, timeout=timeout))
                    rows.append(row)
                    LOGGER.info("%s, %d client(s): done", way, n)
    print(f"web server load, {frames} frames per client ({len(jpegs)} distinct, {Path(video).name}), model {loaded.path.name}")
    print(f"{'way':9} {'clients':>7} {'sent':>6} {'answered':>8} {'dropped':>7} {'errors':>6} {'in order':>8} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'server FPS':>10}")
    for r in rows:
        print(f"{r['way']:9} {r['clients']:>7} {r['sent']:>6} {r['answered']:>8} {r['dropped']:>7} {r['errors']:>6} "
              f"{'yes' if r['in_order'] and r['last_answered'] else 'NO':>8} {r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} "
              f"{r['server_fps']:>10.1f}")
    by = {(r["way"], r["clients"]): r for r in rows}
    for way in ("lockstep", "camera"):
        if clients > 1:
            one, many = by[(way, 1)], by[(way, clients)]
            print(f"{way}: server FPS {clients} clients / 1 client = {many['server_fps'] / one['server_fps']:.2f}; "
                  f"p50 latency ratio {many['p50_ms'] / one['p50_ms']:.2f}")
    bad = [r for r in rows if r["errors"] or not r["in_order"] or not r["last_answered"]]
    for r in bad:
        LOGGER.error("%s with %d clients: %d errors (%s), in order %s, last frame answered %s",
                     r["way"], r["clients"], r["errors"], r["first_error"], r["in_order"], r["last_answered"])
    return 1 if bad else 0


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="the web server with 1 and N WebSocket cameras at once, on 127.0.0.1")
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: train a small one)")
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="frames to stream")
    ap.add_argument("--frames", type=int, default=200, help="frames each client sends")
    ap.add_argument("--clients", type=int, default=4, help="clients at once in the second run")
    ap.add_argument("--camera-fps", type=float, default=30.0, help="send rate of a 'camera' client")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds one run may take at most")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging()
    return run(**vars(opt))


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
