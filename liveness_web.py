"""Serve liveness to a browser: a webcam page, uploads and a JSON API, all on one model.

Usage:
    python liveness_web.py --model output/liveness                  # then open http://127.0.0.1:8000/
    python liveness_web.py --model output/liveness --port 8080 --max-clients 4
    python liveness_web.py --model output/liveness --challenge blink,left   # + the active check
    python liveness_web.py --model output/liveness --host 0.0.0.0 --ssl-certfile cert.pem --ssl-keyfile key.pem
    curl -F file=@face.jpg http://127.0.0.1:8000/api/predict

The model is loaded once; every camera connection and request runs the package's
per-frame pipeline (detector, crop, scorer, threshold, tracking) on it. It listens on
127.0.0.1 unless --host says otherwise. Browsers give a page the camera only on
localhost or over https: from another machine, serve with --ssl-certfile/--ssl-keyfile
(or behind a TLS proxy), or use the page's upload tab.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
from pathlib import Path

from liveness import DEFAULT_MODEL
from liveness.challenge import DEFAULT_COUNT, DEFAULT_SETTINGS, ChallengeSettings, add_challenge_options
from liveness.cli import UserError, cli_main, fraction, positive_float, positive_int, ranged, setup_logging
from liveness.detector import DEFAULT_CONFIDENCE
from liveness.motion import DEFAULT_DETECT_EVERY
from liveness.pipeline import DEFAULT_SCORE_EVERY, add_schedule_options
from liveness.web.app import Limits

LOGGER = logging.getLogger("liveness")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
LIMITS = Limits()
DEFAULT_MAX_UPLOAD_MB = LIMITS.max_upload_bytes / 2**20


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(
    *,
    model: Path = DEFAULT_MODEL,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    threshold: float | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_pixels: int = LIMITS.max_pixels,
    max_clients: int = LIMITS.max_clients,
    max_fps: float = LIMITS.max_fps,
    max_video_frames: int = LIMITS.max_video_frames,
    detector: Path | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    detect_every: int = DEFAULT_DETECT_EVERY,
    score_every: int = DEFAULT_SCORE_EVERY,
    challenge: tuple[str, ...] | None = None,
    challenge_count: int = DEFAULT_COUNT,
    challenge_seed: int | None = None,
    blink_depth: float = DEFAULT_SETTINGS.min_dip,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
    verbose: bool = False,
) -> int:
    """Load the model, then serve until Ctrl-C. Raises LivenessError (UserError, ModelError)
    before anything is served when an option, the model or the port is wrong."""
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise UserError("--ssl-certfile and --ssl-keyfile go together")
    for path in (ssl_certfile, ssl_keyfile):
        if path is not None and not Path(path).is_file():
            raise UserError(f"{path} does not exist")
    limits = Limits(max_upload_bytes=round(max_upload_mb * 2**20), max_pixels=max_pixels, max_clients=max_clients,
                    max_fps=max_fps, max_video_frames=max_video_frames)

    import uvicorn

    from liveness.detector import FaceDetector
    from liveness.model import load_model
    from liveness.web.app import challenge_extras, create_app, default_pipeline_factory, model_name

    sock = _listen(host, port)  # before the model loads: a busy port fails at once
    try:
        loaded = load_model(model, threshold=threshold)
        face_detector = FaceDetector(detector, confidence=confidence)
        extras = challenge_extras(tuple(challenge), challenge_count, challenge_seed,
                                  settings=ChallengeSettings(min_dip=blink_depth)) if challenge else None
        app = create_app(loaded, pipeline_factory=default_pipeline_factory(
            loaded, face_detector, detect_every=detect_every, score_every=score_every), limits=limits,
                         face_extras=extras)
        if challenge:
            LOGGER.info("active check on camera connections: %d prompt(s) per face among %s; blink depth %.2f",
                        challenge_count, ", ".join(challenge), blink_depth)
        scheme = "https" if ssl_certfile else "http"
        shown_host = f"[{host}]" if ":" in host else host
        LOGGER.info("model %s (%s), threshold %.3f", model_name(loaded), getattr(loaded, "scorer", "?"), loaded.threshold)
        LOGGER.info("serving %s://%s:%d/ (Ctrl-C stops)", scheme, shown_host, sock.getsockname()[1])
        if not _is_loopback(host):
            LOGGER.warning("listening on %s: other machines can reach this server%s", host,
                           "" if ssl_certfile else "; their browsers give the page a camera only over https")
        config = uvicorn.Config(
            app, log_config=None, log_level="info" if verbose else "warning", access_log=verbose,
            ws_max_size=limits.max_frame_bytes, server_header=False,
            ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
            ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def parse_opt(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="serve the liveness pipeline to a web page and a JSON API")
    ap.add_argument("-m", "--model", type=Path, default=DEFAULT_MODEL, help="model folder written by train.py")
    ap.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (0.0.0.0: every network)")
    ap.add_argument("--port", type=ranged(int, 0, 65535), default=DEFAULT_PORT, help="0 picks a free port")
    ap.add_argument("-t", "--threshold", type=fraction, default=None,
                    help="live score at or above which a face is live (default: the one saved with the model)")
    ap.add_argument("--max-upload-mb", type=positive_float, default=DEFAULT_MAX_UPLOAD_MB,
                    help="largest image or video a client may POST")
    ap.add_argument("--max-pixels", type=positive_int, default=LIMITS.max_pixels,
                    help="largest image or video frame, in pixels")
    ap.add_argument("--max-clients", type=positive_int, default=LIMITS.max_clients, help="camera connections at once")
    ap.add_argument("--max-fps", type=positive_float, default=LIMITS.max_fps, help="frames a second each page sends at most")
    ap.add_argument("--max-video-frames", type=positive_int, default=LIMITS.max_video_frames,
                    help="frames scored per uploaded video, spread over its length")
    ap.add_argument("-d", "--detector", type=Path, default=None, help="folder with the res10 SSD's two files")
    ap.add_argument("-c", "--confidence", type=fraction, default=DEFAULT_CONFIDENCE, help="minimum face detection confidence")
    add_schedule_options(ap, "camera connections: ")
    add_challenge_options(ap, "on the camera page")
    ap.add_argument("--ssl-certfile", type=Path, default=None, help="serve https with this certificate")
    ap.add_argument("--ssl-keyfile", type=Path, default=None, help="... and this private key")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return ap.parse_args(argv)



def main(opt: argparse.Namespace) -> int:
    setup_logging(opt.verbose)
    return run(**vars(opt))


if __name__ == "__main__":
    cli_main(lambda: main(parse_opt()))
