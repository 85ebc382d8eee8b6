"""The liveness pipeline behind a web page and a JSON API (liveness_web.py serves it).

FastAPI and uvicorn are imported only by liveness.web.app and the script, so the rest
of the package works without them.
"""
