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
server, model and frames, so their ratio is what to read; the absolute figures
depend on the machine (and on what else runs on it). The server is liveness_web.py
itself, in a child process; the clients share one event loop in this process.
"server ms" is the server's own time per frame (decode + pipeline), without queueing.

Bounded: every run stops after its frames, or after --timeout seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_web.py`
    sys.path.insert(0, str(ROOT))

from liveness.cli import UserError, cli_main, positive_float, positive_int, setup_logging  # noqa: E402

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
    server_ms: list[float] = field(default_factory=list)  # the server's own time per frame (decode + pipeline)
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


class ServerProcess:
    """liveness_web.py itself, on 127.0.0.1 and a port it picks, in a child process:
    the clients here do not share an interpreter (or its lock) with the server."""

    def __init__(self, model: Path, max_clients: int) -> None:
        self.argv = [sys.executable, str(ROOT / "liveness_web.py"), "--model", str(model), "--port", "0",
                     "--max-clients", str(max_clients)]

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(self.argv, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        line = ""
        for line in self.proc.stderr:  # its log says where it listens
            found = re.search(r"serving http://127\.0\.0\.1:(\d+)/", line)
            if found:
                threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # keep the pipe drained
                port = int(found.group(1))
                break
        else:
            self.proc.wait(30)
            raise UserError(f"liveness_web.py did not start (exit code {self.proc.returncode}): {line.strip()}")
        deadline = time.monotonic() + 60
        while True:  # ready when it accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"ws://127.0.0.1:{port}/ws"
            except OSError:
                if time.monotonic() > deadline:
                    raise UserError("liveness_web.py does not accept connections") from None
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _on_answer(stats: ClientStats, text: str) -> int | None:
    now = time.perf_counter()
    answer = json.loads(text)
    if "error" in answer:
        stats.errors.append(str(answer["error"]))
    frame_id = answer.get("id")
    if frame_id is not None:
        stats.answered.append(frame_id)
        stats.latencies.append(now - stats.sent[frame_id])
        if "ms" in answer:
            stats.server_ms.append(answer["ms"])
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
        "server_ms": statistics.median(x for r in results for x in r.server_ms),
    }


def make_model(folder: Path) -> Path:
    """The default model (colour LBP) trained on the shared crops: speed does not depend on accuracy."""
    import train

    if not (SHARED_DATA / "crops").is_dir():
        raise UserError(f"no --model given and no {SHARED_DATA / 'crops'} to train one on")
    model = folder / "liveness"
    train.run(dataset=[SHARED_DATA / "crops"], model=model, group_pattern=r"subject\d+", seed=1)
    return model


def run(*, model: Path | None = None, video: Path = DEFAULT_VIDEO, frames: int = 200, clients: int = 4,
        camera_fps: float = 30.0, timeout: float = 300.0) -> int:
    if not Path(video).is_file():
        raise UserError(f"video {video} does not exist")
    jpegs = load_frames(Path(video), frames)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        folder = Path(model) if model else make_model(Path(tmp))
        # Headroom over the clients: the server may still be closing the previous run's
        # sockets when the next run connects, and the cap is not what is measured here.
        with ServerProcess(folder, max_clients=2 * clients) as url:
            asyncio.run(one_run(url, jpegs, clients=1, count=min(frames, 10), way="lockstep", fps=camera_fps, timeout=timeout))  # warm-up
            for way in ("lockstep", "camera"):
                for n in sorted({1, clients}):
                    rows.append(asyncio.run(one_run(url, jpegs, clients=n, count=frames, way=way, fps=camera_fps, timeout=timeout)))
                    LOGGER.info("%s, %d client(s): done", way, n)
    print(f"web server load, {frames} frames per client ({len(jpegs)} distinct, {Path(video).name}, "
          f"{SEND_SIDE} px), model {folder.name if model else 'the default, trained on the shared crops'}")
    print(f"{'way':9} {'clients':>7} {'sent':>6} {'answered':>8} {'dropped':>7} {'errors':>6} {'in order':>8} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'server ms':>9} {'server FPS':>10}")
    for r in rows:
        print(f"{r['way']:9} {r['clients']:>7} {r['sent']:>6} {r['answered']:>8} {r['dropped']:>7} {r['errors']:>6} "
              f"{'yes' if r['in_order'] and r['last_answered'] else 'NO':>8} {r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} "
              f"{r['server_ms']:>9.1f} {r['server_fps']:>10.1f}")
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
    ap.add_argument("--frames", type=positive_int, default=200, help="frames each client sends")
    ap.add_argument("--clients", type=positive_int, default=4, help="clients at once in the second run")
    ap.add_argument("--camera-fps", type=positive_float, default=30.0, help="send rate of a 'camera' client")
    ap.add_argument("--timeout", type=positive_float, default=300.0, help="seconds one run may take at most")
    return ap.parse_args(argv)


def main(opt: argparse.Namespace) -> int:
    setup_logging()
    return run(**vars(opt))


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
