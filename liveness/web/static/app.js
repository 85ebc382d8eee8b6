"use strict";
// Camera tab: video frames go to /ws as JPEG, one at a time (the next leaves when the
// last answer is back) and at most max_fps a second, so nothing queues anywhere.
// Each answer is drawn over the video: boxes, "real"/"fake", score, FPS, and the
// challenge prompt when the server sends one. Upload tab: POST to the JSON API.
// window.liveness exposes what is on screen (tests read it).

const $ = (id) => document.getElementById(id);
const LIVE_COLOUR = "rgb(0, 255, 0)"; // the colours annotate.py draws with
const SPOOF_COLOUR = "rgb(255, 0, 0)";
const PROMPT_COLOUR = "rgb(255, 235, 59)";
const SEND_SIDE = 640; // longer side of the frames sent, in pixels
const JPEG_QUALITY = 0.8;
const ANSWER_TIMEOUT_MS = 5000; // no answer by then: send the next frame anyway
const RECONNECT_MS = 2000;
const FPS_WINDOW_MS = 2000;

const state = (window.liveness = {
  last: null, // the last answer drawn
  shown: [], // the labels on screen for it, in the server's order
  sent: 0,
  answered: 0,
  rendered: 0,
  errors: 0,
  fps: null,
});

let config = { max_fps: 15 };
let socket = null;
let stream = null;
let nextId = 1;
let waitingFor = null;
let sentAt = 0;
let timer = null;
let answerTimes = [];
const grab = document.createElement("canvas");

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function loadConfig() {
  const health = await (await fetch("/healthz")).json();
  config = { max_fps: health.limits.max_fps };
  $("model").textContent = `model ${health.model} · threshold ${health.threshold.toFixed(2)}`;
}

async function startCamera() {
  if (stream) return;
  setStatus("asking for the camera");
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
  } catch (err) {
    setStatus(`no camera: ${err.name}: ${err.message}`, true);
    return;
  }
  const video = $("video");
  video.srcObject = stream;
  await video.play().catch(() => {});
  $("camera-toggle").textContent = "Stop camera";
  openSocket();
}

function stopCamera() {
  clearTimeout(timer);
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  if (socket) socket.close(1000);
  socket = null;
  $("video").srcObject = null;
  clearOverlay();
  $("camera-toggle").textContent = "Start camera";
  setStatus("camera off");
}

function openSocket() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  socket = ws;
  ws.onopen = () => {
    setStatus("streaming");
    schedule(0);
  };
  ws.onmessage = (ev) => onAnswer(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    if (socket !== ws) return; // closed on purpose
    socket = null;
    setStatus(`disconnected (${ev.code}${ev.reason ? ": " + ev.reason : ""})`, true);
    if (stream) setTimeout(() => stream && !socket && openSocket(), RECONNECT_MS);
  };
}

function schedule(delay) {
  clearTimeout(timer);
  timer = setTimeout(sendFrame, delay);
}

function sendFrame() {
  const video = $("video");
  if (!socket || socket.readyState !== WebSocket.OPEN || !video.videoWidth) {
    if (stream) schedule(100);
    return;
  }
  const scale = Math.min(1, SEND_SIDE / Math.max(video.videoWidth, video.videoHeight));
  grab.width = Math.round(video.videoWidth * scale);
  grab.height = Math.round(video.videoHeight * scale);
  grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
  grab.toBlob(
    (blob) => {
      if (!blob || !socket || socket.readyState !== WebSocket.OPEN) {
        if (stream) schedule(100);
        return;
      }
      const id = nextId++;
      const header = new DataView(new ArrayBuffer(4));
      header.setUint32(0, id); // big-endian, as the server reads it
      socket.send(new Blob([header.buffer, blob]));
      waitingFor = id;
      sentAt = performance.now();
      state.sent++;
      schedule(ANSWER_TIMEOUT_MS);
    },
    "image/jpeg",
    JPEG_QUALITY,
  );
}

function onAnswer(msg) {
  state.answered++;
  const now = performance.now();
  answerTimes.push(now);
  answerTimes = answerTimes.filter((t) => now - t <= FPS_WINDOW_MS);
  state.fps = answerTimes.length > 1 ? ((answerTimes.length - 1) * 1000) / (now - answerTimes[0]) : null;
  if (msg.error) {
    state.errors++;
    setStatus(`server: ${msg.error}`, true);
  } else if (!state.last || msg.id > state.last.id) {
    render(msg);
  }
  if (msg.id === waitingFor || msg.id === null) {
    // the next frame, but no sooner than max_fps allows
    schedule(Math.max(0, 1000 / config.max_fps - (now - sentAt)));
  }
}

function clearOverlay() {
  const canvas = $("overlay");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  $("verdicts").replaceChildren();
  $("prompt").hidden = true;
}

function band(ctx, text, x, y, colour, size, textColour = "#000") {
  const pad = Math.round(size / 4);
  const w = ctx.measureText(text).width + 2 * pad;
  const h = size + 2 * pad;
  x = Math.min(Math.max(0, x), Math.max(0, ctx.canvas.width - w));
  y = Math.min(Math.max(0, y), Math.max(0, ctx.canvas.height - h));
  ctx.fillStyle = colour;
  ctx.fillRect(x, y, w, h);
  ctx.fillStyle = textColour;
  ctx.fillText(text, x + pad, y + pad);
  return h;
}

function render(msg) {
  const video = $("video");
  const canvas = $("overlay");
  canvas.width = video.clientWidth;
  canvas.height = video.clientHeight;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const sx = canvas.width / msg.width;
  const sy = canvas.height / msg.height;
  const size = Math.max(12, Math.round(canvas.height / 28));
  ctx.font = `bold ${size}px sans-serif`;
  ctx.textBaseline = "top";
  ctx.lineWidth = Math.max(2, Math.round(size / 6));
  for (const face of msg.faces) {
    const colour = face.live ? LIVE_COLOUR : SPOOF_COLOUR;
    const [x1, y1, x2, y2] = face.box;
    const x = x1 * sx, y = y1 * sy, w = (x2 - x1) * sx, h = (y2 - y1) * sy;
    ctx.strokeStyle = colour;
    ctx.strokeRect(x, y, w, h);
    const bandH = size + 2 * Math.round(size / 4);
    const challenge = face.challenge ? ` · challenge ${face.challenge}` : "";
    band(ctx, `${face.label} ${face.score.toFixed(2)}${challenge}`, x, y >= bandH ? y - bandH : y, colour, size);
    if (face.prompt) band(ctx, String(face.prompt), x, y + h + 2, PROMPT_COLOUR, size);
  }
  if (state.fps !== null) {
    band(ctx, `FPS ${state.fps.toFixed(1)}`, 0, 0, "rgba(0, 0, 0, 0.7)", size, "#fff");
    $("fps").textContent = `${state.fps.toFixed(1)} FPS · ${msg.ms.toFixed(0)} ms on the server`;
  }
  // challenge hook: a prompt from the server ("blink", "turn left"...) shows as a banner
  $("prompt").hidden = !msg.prompt;
  $("prompt").textContent = msg.prompt || "";

  const items = msg.faces.map((face) => {
    const li = document.createElement("li");
    li.className = face.live ? "live" : "spoof";
    li.dataset.label = face.label;
    li.textContent = `${face.label} ${face.score.toFixed(2)}`;
    return li;
  });
  const list = $("verdicts");
  list.replaceChildren(...items);
  list.dataset.frame = String(msg.id);
  state.last = msg;
  state.shown = msg.faces.map((face) => face.label);
  state.rendered++;
}

// --- tabs -------------------------------------------------------------------------

function showTab(name) {
  for (const tab of ["camera", "upload"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`panel-${tab}`).hidden = tab !== name;
  }
  if (name === "camera") startCamera();
  else stopCamera(); // the camera is not needed while uploading
}

// --- upload tab ---------------------------------------------------------------------

const VIDEO_NAME = /\.(mp4|m4v|mov|webm|mkv|avi)$/i;

async function upload(ev) {
  ev.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  const isVideo = file.type.startsWith("video/") || VIDEO_NAME.test(file.name);
  const body = new FormData();
  body.append("file", file);
  const out = $("upload-status");
  out.classList.remove("error");
  out.textContent = isVideo ? "scoring the video…" : "scoring the image…";
  $("result-image").hidden = true;
  $("result-video").hidden = true;
  $("result-json").textContent = "";
  let response, result;
  try {
    response = await fetch(isVideo ? "/api/predict_video" : "/api/predict?annotate=true", { method: "POST", body });
    result = await response.json();
  } catch (err) {
    out.classList.add("error");
    out.textContent = `failed: ${err.message}`;
    return;
  }
  if (!response.ok) {
    out.classList.add("error");
    out.textContent = `refused (${response.status}): ${result.error}`;
    return;
  }
  if (isVideo) {
    const counts = Object.entries(result.summary).map(([k, v]) => `${v} ${k}`).join(", ") || "no faces";
    out.textContent = `${result.frames_scored} frames scored in ${(result.ms / 1000).toFixed(1)} s: ${counts}`;
    if (result.video) {
      $("result-video").src = result.video;
      $("result-video").hidden = false;
    }
    $("result-json").textContent = JSON.stringify({ ...result, video: result.video ? "(above)" : null }, null, 1);
  } else {
    const faces = result.faces.map((f) => `${f.label} ${f.score.toFixed(2)}`).join(", ") || "no face found";
    out.textContent = `${faces} (${result.ms.toFixed(0)} ms)`;
    $("result-image").src = result.image;
    $("result-image").hidden = false;
    $("result-json").textContent = JSON.stringify({ ...result, image: "(above)" }, null, 1);
  }
}

// --- start --------------------------------------------------------------------------

$("tab-camera").onclick = () => showTab("camera");
$("tab-upload").onclick = () => showTab("upload");
$("camera-toggle").onclick = () => (stream ? stopCamera() : startCamera());
$("upload-form").onsubmit = upload;
$("file").onchange = (ev) => $("upload-form").requestSubmit();

loadConfig()
  .catch((err) => setStatus(`server unreachable: ${err.message}`, true))
  .then(() => startCamera());
