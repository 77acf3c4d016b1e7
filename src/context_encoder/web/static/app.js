// Context Encoder web app: paint a hole, send image + full-resolution mask to /api/inpaint, compare, download.
// One file of about 1050 lines on purpose: the page is one closure over shared state (image, mask history, view
// transform, request), and splitting it would mean passing that state through every module. Mask pixel work,
// which needs none of it, lives in mask.js.
import { drawOp, maskFromImage, maskPNG } from "./mask.js";

(() => {
  const $ = (id) => document.getElementById(id);
  const HOLE = "#ffffff"; // colour of the hole in the full-resolution mask canvas
  const OVERLAY = getComputedStyle(document.documentElement).getPropertyValue("--hole").trim() || "#ff2d6f";
  const MAX_SCALE = 32; // CSS px per image px at the deepest zoom
  const MAX_EDGE = 64; // image px: the largest grow and feather (the server's limit for feather)
  const POLL_MS = 500; // how often the queue position is asked for while a fill runs
  const EDGE_GRAB = 24; // CSS px: a box drag may start this far outside the image (it is clamped to the image)
  const MOSTLY_HOLE = 0.9; // a mask covering more of the photo than this asks for a second press of Inpaint
  const FORMATS = { "image/jpeg": ["jpg", "JPEG"], "image/webp": ["webp", "WebP"], "image/png": ["png", "PNG"] };

  const els = {
    status: $("status"), file: $("file"), stage: $("stage"), source: $("source"), overlay: $("overlay"),
    cursor: $("cursor"), size: $("size"), sizeLabel: $("size-label"), undo: $("undo"), redo: $("redo"),
    clear: $("clear"), model: $("model"), method: $("method"), inpaint: $("inpaint"), cancel: $("cancel"),
    download: $("download"), reuse: $("reuse"), compare: $("compare"), before: $("before"), after: $("after"),
    divider: $("divider"), split: $("split"), imageInfo: $("image-info"), resultInfo: $("result-info"),
    resultHint: $("result-hint"), zoomIn: $("zoom-in"), zoomOut: $("zoom-out"), zoomLabel: $("zoom-label"),
    fit: $("fit"), blend: $("blend"), flip: $("flip-average"), grow: $("grow"), feather: $("feather"),
    openMask: $("open-mask"), maskFile: $("mask-file"), inpaintWhy: $("inpaint-why"), pane: $("stage").parentElement,
  };

  const state = {
    file: null, // the File sent to the server (the original bytes, never re-encoded)
    stem: "image",
    width: 0,
    height: 0,
    sourceURL: null, // the photo being painted on
    beforeURL: null, // the photo the shown result was filled from
    resultURL: null,
    resultBlob: null,
    resultUsed: false, // the result has become the photo ("Use result")
    mostlyHoleOK: null, // the mask (ops count and hole px) whose large coverage a second press accepted
    ops: [], // paint operations in image pixels ({kind: "clear"} too); the mask is their replay
    redone: [], // operations undone, most recent last; a new operation drops them
    drawing: null, // the operation being drawn
    tool: "brush",
    fit: 1, // CSS px per image px when the whole image fits the stage
    stageW: 0, // the stage's CSS size: the image fitted into the pane
    stageH: 0,
    view: { s: 0, tx: 0, ty: 0 }, // zoom (CSS px per image px) and the image's top-left corner in the stage
    touches: new Map(), // active touch pointers on the stage: id -> [clientX, clientY]
    pinch: null, // two-finger zoom and pan in progress
    gestureLock: false, // after a pinch, until every finger is lifted: no painting
    pan: null, // space+drag or middle-drag pan in progress
    spaceDown: false,
    overStage: false,
    lastPointer: null,
    busy: false,
    abort: null, // the running fill's AbortController
    job: null, // the running fill: its ticket, its last known place in the server's queue, what cancelling did
    limits: null,
    modelsAvailable: false,
  };

  // The mask at the image's full resolution: hole pixels opaque, others transparent.
  const mask = document.createElement("canvas");
  let maskCtx = null;

  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  // ------------------------------------------------------------------------------------------ status

  let ticker = null;
  let busyText = "";
  let busyStart = 0;
  function setStatus(kind, text) {
    clearInterval(ticker);
    ticker = null;
    els.status.dataset.state = kind;
    els.status.textContent = text;
    if (kind === "error") console.error(text);
  }

  // A busy status with the seconds since it began; setBusyText changes its words, not its clock.
  function busyStatus(text) {
    setStatus("busy", text);
    busyText = text;
    busyStart = performance.now();
    ticker = setInterval(renderBusy, 1000);
  }

  function setBusyText(text) {
    if (els.status.dataset.state !== "busy" || busyText === text) return;
    busyText = text;
    renderBusy();
  }

  function renderBusy() {
    const seconds = (performance.now() - busyStart) / 1000;
    els.status.textContent = seconds >= 1 ? `${busyText} ${seconds.toFixed(0)} s` : busyText;
  }

  async function errorMessage(res) {
    let detail = res.statusText || "request failed";
    try {
      const body = await res.json();
      if (body && body.detail) detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (_) {
      // not JSON: keep the status text
    }
    if (res.status === 503 && res.headers.get("Retry-After")) {
      detail += ` (retry after ${res.headers.get("Retry-After")} s)`;
    }
    return `${detail} [HTTP ${res.status}]`;
  }

  const megabytes = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`;

  // ------------------------------------------------------------------------------------------ models

  async function loadModels() {
    try {
      const res = await fetch("/api/models");
      if (!res.ok) throw new Error(await errorMessage(res));
      const info = await res.json();
      state.limits = info.limits;
      els.model.replaceChildren();
      for (const m of info.models) {
        const opt = document.createElement("option");
        opt.value = m.name;
        const s = m.summary || {};
        const bits = [s.image_size && `${s.image_size} px`, s.mask, s.data].filter(Boolean);
        opt.textContent = s.image_size ? `${m.name} (${s.image_size} px)` : m.name; // short; details on hover
        opt.title = bits.join(", ");
        opt.selected = m.name === info.default;
        els.model.append(opt);
      }
      for (const m of info.methods) {
        // the classical methods the server offers, after the context encoder's entries
        if (m.kind !== "classical" || [...els.method.options].some((o) => o.value === m.name)) continue;
        const opt = document.createElement("option");
        opt.value = m.name;
        opt.textContent = m.label;
        opt.title = m.description;
        els.method.append(opt);
      }
      const available = Object.fromEntries(info.methods.map((m) => [m.name, m.available]));
      for (const opt of els.method.options) opt.disabled = !available[opt.value.split("+")[0]];
      state.modelsAvailable = info.models.length > 0;
      const fallback = info.methods.find((m) => m.kind === "classical" && m.available);
      if (!state.modelsAvailable && fallback) els.method.value = fallback.name;
      updateButtons();
      if (!state.modelsAvailable) {
        setStatus("error", "This server has no models: only the classical methods work (start it with --checkpoint CKPT).");
      } else {
        setStatus("idle", "Open an image (or drop or paste one here), paint over what to remove, then press Inpaint.");
      }
    } catch (err) {
      setStatus("error", `Could not load the model list: ${err.message}`);
    }
  }

  // ------------------------------------------------------------------------------------------- image

  async function openFile(file) {
    if (!file) return;
    if (state.busy) {
      setStatus("error", "Wait for the running inpainting to finish (or cancel it) before opening another image.");
      return;
    }
    if (file.type && !file.type.startsWith("image/")) {
      setStatus("error", `${file.name} is not an image (${file.type}).`);
      return;
    }
    if (state.limits && file.size > state.limits.max_bytes) {
      setStatus("error", `${file.name} is ${megabytes(file.size)}; the server accepts at most ${megabytes(state.limits.max_bytes)}.`);
      return;
    }
    busyStatus(`Opening ${file.name}…`);
    const url = URL.createObjectURL(file);
    const probe = new Image();
    try {
      probe.src = url;
      await probe.decode();
    } catch (_) {
      URL.revokeObjectURL(url);
      setStatus("error", `Could not open ${file.name}: this browser cannot decode it (try PNG, JPEG or WebP).`);
      return;
    }
    const w = probe.naturalWidth;
    const h = probe.naturalHeight;
    if (state.limits && w * h > state.limits.max_pixels) {
      URL.revokeObjectURL(url);
      setStatus("error", `${file.name} is ${w}×${h} = ${(w * h / 1e6).toFixed(1)} MP; the server accepts at most ${(state.limits.max_pixels / 1e6).toFixed(1)} MP.`);
      return;
    }
    mask.width = w;
    mask.height = h;
    maskCtx = mask.getContext("2d", { willReadFrequently: true });
    if (!maskCtx || mask.width !== w) {
      URL.revokeObjectURL(url);
      setStatus("error", `This browser cannot hold a ${w}×${h} mask in memory.`);
      return;
    }
    const previous = state.sourceURL;
    Object.assign(state, { file, width: w, height: h, sourceURL: url, ops: [], redone: [], drawing: null });
    Object.assign(state, { pinch: null, pan: null, gestureLock: false, view: { s: 0, tx: 0, ty: 0 } });
    state.stem = (file.name || "image").replace(/\.[^.]+$/, "") || "image";
    els.source.src = url;
    els.stage.classList.remove("empty");
    els.imageInfo.textContent = `${file.name} · ${w}×${h} · ${megabytes(file.size)}`;
    clearResult();
    release(previous);
    setDownloadLabel(file.type);
    layout();
    updateButtons();
    setStatus("idle", `Loaded ${file.name} (${w}×${h}). Paint over what to remove, then press Inpaint.`);
  }

  // A mask image for the open photo (white = hole), scaled to it if it has its shape; it replaces the painted
  // mask as one operation, so Undo brings the painted one back.
  async function openMask(file) {
    if (!file) return;
    if (!state.width || state.busy || state.drawing) {
      setStatus("error", state.width ? "Wait for the running fill to end before loading a mask." : "Open a photo first, then its mask.");
      return;
    }
    if (file.type && !file.type.startsWith("image/")) {
      setStatus("error", `The mask ${file.name} is not an image (${file.type}).`);
      return;
    }
    const url = URL.createObjectURL(file);
    const img = new Image();
    try {
      img.src = url;
      await img.decode();
      const [w, h, pw, ph] = [img.naturalWidth, img.naturalHeight, state.width, state.height];
      if ((w !== pw || h !== ph) && Math.abs(w * ph - h * pw) > 0.01 * w * ph) {
        setStatus("error", `The mask ${file.name} is ${w}×${h} but the photo is ${pw}×${ph}: a mask needs the photo's size, or at least its shape.`);
        return;
      }
      const { canvas, holes } = maskFromImage(img, pw, ph);
      if (!holes) {
        setStatus("error", `The mask ${file.name} has no white pixels: white marks the hole, black or transparent keeps the photo.`);
        return;
      }
      commit({ kind: "mask", canvas });
      replayMask();
      const scaled = w !== pw || h !== ph ? ` (scaled from ${w}×${h})` : "";
      const share = ((100 * holes) / (pw * ph)).toFixed(1);
      setStatus("idle", `Loaded the mask ${file.name}${scaled}: ${share}% of the photo. Paint to change it, then press Inpaint.`);
    } catch (_) {
      setStatus("error", `Could not open the mask ${file.name}: this browser cannot decode it (try PNG).`);
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  // Revoke the object URLs that nothing shows any more.
  function release(...urls) {
    const used = [state.sourceURL, state.beforeURL, state.resultURL];
    for (const url of urls) if (url && !used.includes(url)) URL.revokeObjectURL(url);
  }

  // The server answers in the photo's own format (JPEG for a JPEG, WebP for a WebP, else PNG): the button says so.
  function setDownloadLabel(type) {
    const [, name] = FORMATS[type] || FORMATS["image/png"];
    els.download.textContent = `Download ${name}`;
  }

  // Fit the image into its pane: the stage (and the result) get that size; the overlay canvas gets it times the
  // pixel ratio. A zoomed view keeps its zoom relative to the fit and the image point at the stage's centre.
  function layout() {
    if (!state.width) return;
    const pane = els.stage.parentElement;
    const style = getComputedStyle(pane);
    const availW = pane.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const top = els.stage.getBoundingClientRect().top + window.scrollY;
    const availH = Math.max(240, Math.round(window.innerHeight * 0.55), window.innerHeight - top - 60);
    const scale = Math.min(8, availW / state.width, availH / state.height); // small images are enlarged
    const dw = Math.max(1, Math.round(state.width * scale));
    const dh = Math.max(1, Math.round(state.height * scale));
    const { s, tx, ty } = state.view;
    const fitted = !s || s <= state.fit * 1.001;
    const zoom = s / state.fit;
    const centre = [(state.stageW / 2 - tx) / s, (state.stageH / 2 - ty) / s];
    state.fit = dw / state.width;
    state.stageW = dw;
    state.stageH = dh;
    for (const el of [els.stage, els.compare]) {
      el.style.width = `${dw}px`;
      el.style.height = `${dh}px`;
    }
    const ratio = window.devicePixelRatio || 1;
    els.overlay.width = Math.round(dw * ratio);
    els.overlay.height = Math.round(dh * ratio);
    if (fitted) {
      setView(state.fit, 0, 0);
    } else {
      const ns = clampScale(state.fit * zoom);
      setView(ns, dw / 2 - centre[0] * ns, dh / 2 - centre[1] * ns);
    }
  }

  // ------------------------------------------------------------------------------------- zoom and pan

  const clampScale = (s) => clamp(s, state.fit, Math.max(state.fit, MAX_SCALE));

  // Show the image at `s` CSS px per image px with its corner at (tx, ty) in the stage; an image smaller than the
  // stage is centred, a larger one always covers it.
  function setView(s, tx, ty) {
    s = clampScale(s);
    const iw = state.width * s;
    const ih = state.height * s;
    tx = iw <= state.stageW ? (state.stageW - iw) / 2 : clamp(tx, state.stageW - iw, 0);
    ty = ih <= state.stageH ? (state.stageH - ih) / 2 : clamp(ty, state.stageH - ih, 0);
    state.view = { s, tx, ty };
    Object.assign(els.source.style, { left: `${tx}px`, top: `${ty}px`, width: `${iw}px`, height: `${ih}px` });
    els.stage.classList.toggle("pixelated", s * (window.devicePixelRatio || 1) >= 4);
    els.zoomLabel.textContent = `${Math.round(s * 100)}%`;
    redrawOverlay(state.drawing && state.drawing.kind === "box" ? state.drawing : null);
    updateSizeLabel();
    updateZoomButtons();
  }

  // Zoom by `factor` about a point of the page (the pointer): the image pixel under it stays there.
  function zoomAt(clientX, clientY, factor) {
    if (!state.width) return;
    const r = els.stage.getBoundingClientRect();
    const px = clientX - r.left;
    const py = clientY - r.top;
    const { s, tx, ty } = state.view;
    const ns = clampScale(s * factor);
    setView(ns, px - ((px - tx) * ns) / s, py - ((py - ty) * ns) / s);
  }

  function zoomCentre(factor) {
    const r = els.stage.getBoundingClientRect();
    zoomAt(r.left + r.width / 2, r.top + r.height / 2, factor);
  }

  function fitView() {
    if (state.width) setView(state.fit, 0, 0);
  }

  function wheel(event) {
    if (!state.width) return;
    event.preventDefault();
    const unit = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? state.stageH : 1;
    const rate = event.ctrlKey ? 0.01 : 0.0015; // ctrl+wheel: a trackpad pinch, in small steps
    zoomAt(event.clientX, event.clientY, Math.exp(clamp(-event.deltaY * unit * rate, -1, 1)));
  }

  function startPan(event) {
    state.pan = { id: event.pointerId, x: event.clientX, y: event.clientY, tx: state.view.tx, ty: state.view.ty };
    els.stage.classList.add("grabbing");
    els.cursor.hidden = true;
  }

  function movePan(event) {
    const p = state.pan;
    setView(state.view.s, p.tx + event.clientX - p.x, p.ty + event.clientY - p.y);
  }

  // Two fingers: the image point under their starting midpoint follows the midpoint, the zoom follows their
  // distance. A stroke the first finger began is dropped.
  function startPinch() {
    if (state.drawing) {
      state.drawing = null;
      replayMask();
    }
    const [a, b] = [...state.touches.values()];
    const view = { ...state.view };
    state.pinch = { dist: Math.hypot(a[0] - b[0], a[1] - b[1]) || 1, mid: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2], view };
    state.gestureLock = true;
    els.cursor.hidden = true;
  }

  function movePinch() {
    const [a, b] = [...state.touches.values()];
    const p = state.pinch;
    const r = els.stage.getBoundingClientRect();
    const ns = clampScale((p.view.s * Math.hypot(a[0] - b[0], a[1] - b[1])) / p.dist);
    const ix = (p.mid[0] - r.left - p.view.tx) / p.view.s;
    const iy = (p.mid[1] - r.top - p.view.ty) / p.view.s;
    setView(ns, (a[0] + b[0]) / 2 - r.left - ix * ns, (a[1] + b[1]) / 2 - r.top - iy * ns);
  }

  function updateZoomButtons() {
    const loaded = Boolean(state.width);
    const s = state.view.s;
    els.zoomIn.disabled = !loaded || s >= Math.max(state.fit, MAX_SCALE) * 0.999;
    els.zoomOut.disabled = !loaded || s <= state.fit * 1.001;
    els.fit.disabled = els.zoomOut.disabled;
    if (!loaded) els.zoomLabel.textContent = "–";
  }

  // ------------------------------------------------------------------------------------------- mask

  // The overlay's context drawing in image pixels through the current view.
  function overlayContext() {
    const ctx = els.overlay.getContext("2d");
    const k = els.overlay.width / state.stageW; // device px per CSS px
    const { s, tx, ty } = state.view;
    ctx.setTransform(s * k, 0, 0, s * k, tx * k, ty * k);
    return ctx;
  }

  function redrawOverlay(preview = null) {
    if (!state.width || !maskCtx) return;
    const ctx = els.overlay.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, els.overlay.width, els.overlay.height);
    ctx.globalCompositeOperation = "source-over";
    const view = overlayContext();
    view.imageSmoothingEnabled = state.view.s * (els.overlay.width / state.stageW) < 1; // magnified: crisp pixels
    view.drawImage(mask, 0, 0);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.globalCompositeOperation = "source-in";
    ctx.fillStyle = OVERLAY;
    ctx.fillRect(0, 0, els.overlay.width, els.overlay.height);
    ctx.globalCompositeOperation = "source-over";
    if (preview) {
      drawOp(overlayContext(), preview, preview.erase ? "rgba(0,0,0,0.5)" : OVERLAY);
      ctx.setTransform(1, 0, 0, 1, 0, 0);
    }
  }

  // The last Clear or loaded mask: the mask is what it left (nothing, or the loaded holes) and what came after.
  const lastReset = () => state.ops.findLastIndex((op) => op.kind === "clear" || op.kind === "mask");
  const hasMask = () => {
    const i = lastReset();
    return state.ops.length > i + 1 || (i >= 0 && state.ops[i].kind === "mask");
  };

  function replayMask() {
    maskCtx.clearRect(0, 0, state.width, state.height);
    for (const op of state.ops.slice(Math.max(0, lastReset()))) if (op.kind !== "clear") drawOp(maskCtx, op, HOLE);
    redrawOverlay();
  }

  // The image pixel under a pointer, to 0.1 px, at any zoom and pan.
  function imagePoint(event) {
    const r = els.stage.getBoundingClientRect();
    const { s, tx, ty } = state.view;
    const x = (event.clientX - r.left - tx) / s;
    const y = (event.clientY - r.top - ty) / s;
    return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
  }

  // A box corner: the image pixel under the pointer, the pointer first brought inside the stage (a drag may start
  // or go outside the image) and the point then into the image.
  function boxPoint(event) {
    const r = els.stage.getBoundingClientRect();
    const [x, y] = imagePoint({ clientX: clamp(event.clientX, r.left, r.right), clientY: clamp(event.clientY, r.top, r.bottom) });
    return [clamp(x, 0, state.width), clamp(y, 0, state.height)];
  }

  // A press in the pane at most EDGE_GRAB px outside the image starts a box there, at the image's edge.
  function paneDown(event) {
    if (event.target === els.overlay || state.tool !== "box" || !state.width) return;
    if (event.target.closest("button, a, input, select, summary, label, output")) return;
    const r = els.stage.getBoundingClientRect();
    const dx = Math.max(r.left - event.clientX, event.clientX - r.right, 0);
    const dy = Math.max(r.top - event.clientY, event.clientY - r.bottom, 0);
    if (dx <= EDGE_GRAB && dy <= EDGE_GRAB) pointerDown(event);
  }

  const brushSize = () => Math.max(1, Number(els.size.value) / state.view.s); // image px

  function capture(event) {
    try {
      els.overlay.setPointerCapture(event.pointerId);
    } catch (_) {
      // a pointer the browser no longer tracks: nothing to capture
    }
  }

  function pointerDown(event) {
    if (!state.width) return;
    state.lastPointer = event;
    if (event.pointerType === "touch") {
      state.touches.set(event.pointerId, [event.clientX, event.clientY]);
      if (state.touches.size === 2 && !state.pan) {
        event.preventDefault();
        startPinch();
        return;
      }
      if (state.touches.size > 1 || state.gestureLock) return;
    }
    if (event.button === 1 || (event.button === 0 && state.spaceDown)) {
      event.preventDefault();
      capture(event);
      startPan(event);
      return;
    }
    if (state.busy || event.button !== 0 || state.drawing || state.pan) return;
    event.preventDefault();
    capture(event);
    if (state.tool === "box") {
      const p = boxPoint(event);
      state.drawing = { kind: "box", start: p, x: p[0], y: p[1], w: 0, h: 0, erase: false };
    } else {
      const p = imagePoint(event);
      state.drawing = { kind: "stroke", points: [p], size: brushSize(), erase: state.tool === "eraser" };
      drawOp(maskCtx, state.drawing, HOLE);
      drawOp(overlayContext(), state.drawing, OVERLAY);
    }
    state.drawing.pointerId = event.pointerId;
  }

  function pointerMove(event) {
    if (event.pointerType === "touch" && state.touches.has(event.pointerId)) {
      state.touches.set(event.pointerId, [event.clientX, event.clientY]);
      if (state.pinch) {
        movePinch();
        return;
      }
    }
    if (state.pan && event.pointerId === state.pan.id) {
      movePan(event);
      return;
    }
    state.lastPointer = event;
    moveCursor(event);
    const op = state.drawing;
    if (!op || event.pointerId !== op.pointerId) return;
    const p = op.kind === "box" ? boxPoint(event) : imagePoint(event);
    if (op.kind === "box") {
      op.x = Math.min(op.start[0], p[0]);
      op.y = Math.min(op.start[1], p[1]);
      op.w = Math.abs(p[0] - op.start[0]);
      op.h = Math.abs(p[1] - op.start[1]);
      redrawOverlay(op);
    } else {
      const last = op.points[op.points.length - 1];
      if (Math.hypot(p[0] - last[0], p[1] - last[1]) < 0.5) return;
      op.points.push(p);
      const from = op.points.length - 1;
      drawOp(maskCtx, op, HOLE, from);
      drawOp(overlayContext(), op, OVERLAY, from);
    }
  }

  function pointerUp(event) {
    if (event.pointerType === "touch") {
      state.touches.delete(event.pointerId);
      if (state.touches.size < 2) state.pinch = null;
      if (state.touches.size === 0) state.gestureLock = false;
    }
    if (state.pan && event.pointerId === state.pan.id) {
      state.pan = null;
      els.stage.classList.remove("grabbing");
      return;
    }
    const op = state.drawing;
    if (!op || event.pointerId !== op.pointerId) return;
    state.drawing = null;
    delete op.pointerId;
    if (op.kind === "box") {
      delete op.start;
      if (op.w < 1 || op.h < 1) {
        redrawOverlay();
        return;
      }
      drawOp(maskCtx, op, HOLE);
    }
    commit(op);
    redrawOverlay();
  }

  function moveCursor(event) {
    const show =
      state.width && state.tool !== "box" && event && event.type !== "pointerleave" &&
      event.pointerType !== "touch" && !state.spaceDown && !state.pan && !state.pinch;
    els.cursor.hidden = !show;
    if (!show) return;
    const r = els.stage.getBoundingClientRect();
    const d = Number(els.size.value);
    Object.assign(els.cursor.style, {
      width: `${d}px`,
      height: `${d}px`,
      left: `${event.clientX - r.left - d / 2}px`,
      top: `${event.clientY - r.top - d / 2}px`,
    });
  }

  function commit(op) {
    state.ops.push(op);
    state.redone = [];
    updateButtons();
  }

  function undo() {
    if (!state.ops.length || state.busy || state.drawing) return;
    state.redone.push(state.ops.pop());
    replayMask();
    updateButtons();
  }

  function redo() {
    if (!state.redone.length || state.busy || state.drawing) return;
    state.ops.push(state.redone.pop());
    replayMask();
    updateButtons();
  }

  function clearMask() {
    if (state.busy || state.drawing || !hasMask()) return;
    commit({ kind: "clear" });
    replayMask();
  }

  // [ and ]: about 25% smaller or larger, at least 1 px, within the slider's range.
  function stepSize(direction) {
    const v = Number(els.size.value);
    const next = direction > 0 ? Math.max(v + 1, Math.round(v * 1.25)) : Math.min(v - 1, Math.round(v / 1.25));
    els.size.value = String(clamp(next, Number(els.size.min), Number(els.size.max)));
    updateSizeLabel();
    if (state.lastPointer && !els.cursor.hidden) moveCursor(state.lastPointer);
  }

  function updateSizeLabel() {
    const px = Number(els.size.value);
    const s = state.view.s;
    els.sizeLabel.textContent = state.width && Math.abs(s - 1) > 0.01 ? `${px} px (${Math.round(px / s)} in image)` : `${px} px`;
  }

  function setTool(tool) {
    state.tool = tool;
    for (const input of document.querySelectorAll('input[name="tool"]')) input.checked = input.value === tool;
    els.stage.classList.remove("brush", "eraser", "box");
    els.stage.classList.add(tool);
  }

  function setPanKey(down) {
    state.spaceDown = down;
    els.stage.classList.toggle("panning", down);
    if (down) els.cursor.hidden = true;
  }

  // ----------------------------------------------------------------------------------------- inpaint

  // A whole number of px from an options field, within [0, MAX_EDGE]; the field is set to what is used.
  function edgeWidth(input) {
    const v = clamp(Math.round(Number(input.value)) || 0, 0, MAX_EDGE);
    input.value = String(v);
    return v;
  }

  // A random token naming this request in the server's queue (crypto.getRandomValues also works over plain http).
  function newTicket() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // Ask the server where the request stands until `stop` is called; the status line shows it.
  function watchQueue(ticket, label) {
    let timer = null;
    let stopped = false;
    const tick = async () => {
      try {
        const res = await fetch(`/api/queue?ticket=${ticket}`);
        if (res.ok && !stopped) showPlace(await res.json(), label);
      } catch (_) {
        // the next poll may get through; the fill's own request reports real failures
      }
      if (!stopped) timer = setTimeout(tick, POLL_MS);
    };
    timer = setTimeout(tick, 100);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  function showPlace(place, label) {
    const job = state.job;
    if (!state.busy || !job) return;
    if (place.state) job.stage = place.state;
    if (place.state === "uploading") setBusyText("Uploading…");
    else if (place.state === "waiting") setBusyText(place.ahead > 0 ? `Waiting — ${place.ahead} ahead…` : "Waiting for a free worker…");
    else if (place.state === "running") setBusyText(`Filling with ${label}…`);
    else if (job.stage === "running") setBusyText("Receiving the result…");
  }

  // Tell the server to drop or stop the request (POST /api/cancel), then stop waiting for its answer. The abort
  // waits for the server's word (at most a second), so that the status line can say what was cancelled.
  async function cancel() {
    const job = state.job;
    if (!state.abort || !job || job.cancelling) return;
    job.cancelling = true;
    setBusyText("Cancelling…");
    if (job.ticket) {
      try {
        const answer = fetch(`/api/cancel?ticket=${job.ticket}`, { method: "POST" }).then((res) => res.json());
        const timeout = new Promise((resolve) => setTimeout(resolve, 1000, null));
        const said = await Promise.race([answer, timeout]);
        if (said) job.cancelled = said.state;
      } catch (_) {
        // the abort below still closes the connection, which the server takes as a cancel too
      }
    }
    if (state.abort) state.abort.abort();
  }

  function cancelledText() {
    const job = state.job || {};
    const stage = job.cancelled || job.stage;
    if (stage === "running") return "Cancelled: the server stopped the fill, and the next one starts at once.";
    if (stage === "waiting") return "Cancelled: the server dropped the request from its queue.";
    return "Cancelled.";
  }

  // Where focus goes when a fill ends: to Download after a result, else back to Inpaint; unless the user has
  // put it somewhere else meanwhile (the Inpaint button, disabled while a fill runs, loses focus to the page).
  function restoreFocus(done) {
    const at = document.activeElement;
    if (at && at !== document.body && at !== els.cancel && at !== els.inpaint) return;
    const target = done && els.download.getAttribute("aria-disabled") !== "true" ? els.download : els.inpaint;
    target.focus({ preventScroll: true });
  }

  // The first press with a mask over MOSTLY_HOLE of the photo only warns; a second press with that mask fills.
  function mostlyHole(holes) {
    const share = holes / (state.width * state.height);
    if (share >= 1) {
      setStatus("error", "The mask covers the whole photo: nothing is left to fill it from. Erase part of it.");
      return true;
    }
    const key = `${state.ops.length}:${holes}`;
    if (share <= MOSTLY_HOLE || state.mostlyHoleOK === key) return false;
    state.mostlyHoleOK = key;
    setStatus("warn", `The mask covers ${Math.round(share * 100)}% of the photo: little is left to fill it from. Press Inpaint again to fill anyway.`);
    return true;
  }

  function requestForm(blob, method, refine) {
    const form = new FormData();
    form.append("image", state.file, state.file.name || "image");
    form.append("mask", blob, "mask.png");
    form.append("method", method);
    form.append("format", "input"); // a JPEG comes back as a JPEG, a WebP as a WebP, anything else as PNG
    if (method === "model") {
      form.append("model", els.model.value);
      if (els.blend.value) form.append("blend", els.blend.value);
      if (els.flip.value) form.append("flip_average", els.flip.value);
    }
    if (refine) form.append("refine", refine);
    const feather = edgeWidth(els.feather);
    if (feather) form.append("feather", String(feather));
    return { form, feather };
  }

  async function inpaint() {
    if (state.busy) return;
    const why = inpaintBlocker();
    if (why) {
      setStatus("error", why);
      return;
    }
    const [method, refine] = els.method.value.split("+");
    const hadFocus = document.activeElement === els.inpaint;
    const controller = new AbortController();
    state.abort = controller;
    state.job = { stage: null, ticket: null };
    setBusy(true);
    if (hadFocus) els.cancel.focus({ preventScroll: true }); // Enter, then Enter again, cancels
    const label = method === "model" ? els.model.value : els.method.selectedOptions[0].textContent;
    busyStatus("Preparing the mask…");
    const started = performance.now();
    let stopWatching = () => {};
    let done = false;
    try {
      const { blob, holes, box } = await maskPNG(maskCtx, state.width, state.height, edgeWidth(els.grow));
      if (controller.signal.aborted) throw new DOMException("cancelled", "AbortError");
      if (!holes) {
        setStatus("error", "The mask is empty: paint over the part of the image to fill first.");
        return;
      }
      if (mostlyHole(holes)) return;
      const { form, feather } = requestForm(blob, method, refine);
      const ticket = newTicket();
      state.job.ticket = ticket;
      setBusyText(`Sending ${state.width}×${state.height} for ${label}…`);
      stopWatching = watchQueue(ticket, label);
      let res;
      try {
        res = await fetch(`/api/inpaint?ticket=${ticket}`, { method: "POST", body: form, signal: controller.signal });
      } catch (err) {
        if (err.name === "AbortError") throw err;
        setStatus("error", `Could not reach the server: ${err.message}`);
        return;
      }
      if (state.job.cancelling) throw new DOMException("cancelled", "AbortError"); // answered before the abort
      if (!res.ok) {
        setStatus("error", `Inpainting failed: ${await errorMessage(res)}`);
        return;
      }
      const result = await res.blob();
      stopWatching();
      await showResult(result, box, feather);
      done = true;
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const server = res.headers.get("X-Inpaint-Seconds");
      const extras = [grewText(), feather ? `feather ${feather} px` : ""].filter(Boolean).join(", ");
      els.resultInfo.textContent = `${label} · ${state.width}×${state.height} · ${holes.toLocaleString()} hole px${extras ? ` (${extras})` : ""}`;
      setStatus("ok", `Done in ${seconds} s${server ? ` (server ${Number(server).toFixed(2)} s)` : ""}. Drag the slider to compare; ${els.download.textContent} saves the result.`);
    } catch (err) {
      if (err.name === "AbortError") setStatus("idle", cancelledText());
      else setStatus("error", `Inpainting failed: ${err.message}`);
    } finally {
      stopWatching();
      state.abort = null;
      state.job = null;
      setBusy(false);
      restoreFocus(done);
    }
  }

  const grewText = () => (Number(els.grow.value) ? `grown ${els.grow.value} px` : "");

  // Show the result beside the photo it was filled from, the slider just left of what changed (the holes' box,
  // widened by the feather), so that the holes show filled; on a narrow screen, scroll it into view.
  async function showResult(blob, box, feather) {
    const old = [state.resultURL, state.beforeURL];
    state.resultBlob = blob;
    state.resultURL = URL.createObjectURL(blob);
    state.beforeURL = state.sourceURL;
    state.resultUsed = false;
    els.after.src = state.resultURL;
    els.before.src = state.beforeURL;
    release(...old);
    await els.after.decode().catch(() => {
      throw new Error("the server's answer is not an image this browser can show");
    });
    els.compare.hidden = false;
    els.resultHint.hidden = true;
    const [ext] = FORMATS[blob.type] || FORMATS["image/png"];
    setDownloadLabel(blob.type);
    els.download.href = state.resultURL;
    els.download.download = `${state.stem}-inpainted.${ext}`;
    const left = box.x1 >= 0 ? Math.max(0, box.x0 - feather - state.width * 0.02) : state.width / 2;
    els.split.value = String(Math.floor((1000 * left) / state.width) / 10);
    setSplit(Number(els.split.value));
    updateButtons();
    const r = els.compare.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) {
      const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      els.compare.scrollIntoView({ block: "nearest", behavior: still ? "auto" : "smooth" });
    }
  }

  function clearResult() {
    const old = [state.resultURL, state.beforeURL];
    Object.assign(state, { resultURL: null, beforeURL: null, resultBlob: null, resultUsed: false });
    els.after.removeAttribute("src");
    els.before.removeAttribute("src");
    els.compare.hidden = true;
    els.resultHint.hidden = false;
    els.resultInfo.textContent = "";
    els.download.removeAttribute("href");
    release(...old);
  }

  function setSplit(percent) {
    els.before.style.clipPath = `inset(0 ${100 - percent}% 0 0)`;
    els.divider.style.left = `${percent}%`;
  }

  // "Use result": the filled image becomes the photo to paint on (same size, same zoom and pan), the mask is
  // cleared, the comparison stays until the next fill. Its file is the server's answer, sent as it is.
  function useResult() {
    if (!state.resultBlob || state.busy || state.drawing || state.resultUsed) return;
    const ext = (FORMATS[state.resultBlob.type] || FORMATS["image/png"])[0];
    const file = new File([state.resultBlob], `${state.stem}-inpainted.${ext}`, { type: state.resultBlob.type });
    const previous = state.sourceURL;
    Object.assign(state, { file, sourceURL: state.resultURL, ops: [], redone: [], resultUsed: true, mostlyHoleOK: null });
    els.source.src = state.sourceURL;
    release(previous);
    replayMask();
    els.imageInfo.textContent = `${file.name} · ${state.width}×${state.height} · ${megabytes(file.size)}`;
    updateButtons();
    setStatus("idle", "The result is now the photo, with an empty mask: paint the next part to remove, then press Inpaint.");
  }

  function setBusy(busy) {
    state.busy = busy;
    document.body.classList.toggle("busy", busy);
    els.cancel.hidden = !busy;
    updateButtons();
  }

  // Why Inpaint cannot be pressed now, in words for the line beside it; "" when it can.
  function inpaintBlocker() {
    if (!state.width) return "Open a photo first.";
    if (state.busy) return "";
    if (!hasMask()) return "Paint over what to remove first (or load a mask).";
    const option = els.method.selectedOptions[0];
    if (els.method.value.startsWith("model") && !state.modelsAvailable) {
      return "This server has no models: choose a classical method.";
    }
    if (option && option.disabled) return `${option.textContent} is not available on this server: choose another method.`;
    return "";
  }

  function updateButtons() {
    const loaded = Boolean(state.width);
    const idle = loaded && !state.busy;
    els.undo.disabled = !idle || !state.ops.length;
    els.redo.disabled = !idle || !state.redone.length;
    els.clear.disabled = !idle || !hasMask();
    const why = inpaintBlocker();
    els.inpaint.disabled = state.busy || Boolean(why);
    els.inpaintWhy.textContent = why;
    els.inpaint.title = why || "Fill the masked part";
    const model = els.method.value.startsWith("model");
    els.model.disabled = state.busy || !state.modelsAvailable || !model;
    els.blend.disabled = els.flip.disabled = state.busy || !model;
    els.grow.disabled = els.feather.disabled = state.busy;
    els.reuse.disabled = state.busy || !state.resultURL || state.resultUsed;
    els.download.setAttribute("aria-disabled", String(!state.resultURL));
    if (!state.resultURL) els.download.removeAttribute("href");
    els.openMask.setAttribute("aria-disabled", String(!idle));
    updateZoomButtons();
  }

  // ------------------------------------------------------------------------------------------ events

  // Keys go to a focused text field, number field or menu, not to the page's shortcuts.
  function typing(target) {
    if (target instanceof HTMLInputElement) return !["radio", "range", "checkbox", "button", "file"].includes(target.type);
    return target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement || Boolean(target && target.isContentEditable);
  }

  els.file.addEventListener("change", () => {
    openFile(els.file.files[0]);
    els.file.value = "";
  });
  els.maskFile.addEventListener("change", () => {
    openMask(els.maskFile.files[0]);
    els.maskFile.value = "";
  });
  for (const [button, input] of [[$("open"), els.file], [els.openMask, els.maskFile]]) {
    button.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        if (button.getAttribute("aria-disabled") !== "true") input.click();
      }
    });
  }
  for (const input of document.querySelectorAll('input[name="tool"]')) {
    input.addEventListener("change", () => setTool(input.value));
  }
  els.size.addEventListener("input", updateSizeLabel);
  els.undo.addEventListener("click", undo);
  els.redo.addEventListener("click", redo);
  els.clear.addEventListener("click", clearMask);
  els.inpaint.addEventListener("click", inpaint);
  els.cancel.addEventListener("click", cancel);
  els.reuse.addEventListener("click", useResult);
  els.method.addEventListener("change", updateButtons);
  els.split.addEventListener("input", () => setSplit(Number(els.split.value)));
  els.zoomIn.addEventListener("click", () => zoomCentre(1.5));
  els.zoomOut.addEventListener("click", () => zoomCentre(1 / 1.5));
  els.fit.addEventListener("click", fitView);
  for (const input of [els.grow, els.feather]) input.addEventListener("change", () => edgeWidth(input));
  els.overlay.addEventListener("pointerdown", pointerDown);
  els.pane.addEventListener("pointerdown", paneDown);
  document.addEventListener("selectstart", (e) => {
    if (state.drawing || state.pan || state.pinch) e.preventDefault(); // a drag never selects the page's text
  });
  els.overlay.addEventListener("pointermove", pointerMove);
  els.overlay.addEventListener("pointerup", pointerUp);
  els.overlay.addEventListener("pointercancel", pointerUp);
  els.overlay.addEventListener("pointerleave", (e) => {
    state.overStage = false;
    moveCursor(e);
  });
  els.overlay.addEventListener("pointerenter", () => {
    state.overStage = true;
  });
  els.overlay.addEventListener("mousedown", (e) => {
    if (e.button === 1) e.preventDefault(); // no autoscroll: the middle button pans
  });
  els.stage.addEventListener("wheel", wheel, { passive: false });

  document.addEventListener("dragover", (e) => {
    e.preventDefault();
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", (e) => {
    if (!e.relatedTarget) document.body.classList.remove("dragging");
  });
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    document.body.classList.remove("dragging");
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) openFile(file);
  });
  document.addEventListener("paste", (e) => {
    if (typing(e.target) || !e.clipboardData) return;
    const files = [...e.clipboardData.files];
    for (const item of e.clipboardData.items || []) {
      if (item.kind === "file" && !files.length) files.push(item.getAsFile());
    }
    const file = files.find((f) => f && f.type.startsWith("image/"));
    if (!file) return;
    e.preventDefault();
    openFile(file.name ? file : new File([file], "pasted.png", { type: file.type }));
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.busy) {
      cancel();
      return;
    }
    if (typing(e.target)) return;
    const key = e.key.toLowerCase();
    if (e.ctrlKey || e.metaKey) {
      if (key === "z" && !e.shiftKey) undo();
      else if ((key === "z" && e.shiftKey) || key === "y") redo();
      else return;
      e.preventDefault();
    } else if (e.code === "Space" || e.key === " ") {
      if (!state.width || !state.overStage) return;
      e.preventDefault(); // no page scroll, no button press: the space bar pans while held
      if (!e.repeat) setPanKey(true);
    } else if (!e.altKey) {
      const tool = { b: "brush", e: "eraser", r: "box" }[key];
      if (tool) setTool(tool);
      else if (e.key === "[") stepSize(-1);
      else if (e.key === "]") stepSize(1);
      else if (e.key === "0") fitView();
      else if (e.key === "+" || e.key === "=") zoomCentre(1.5);
      else if (e.key === "-") zoomCentre(1 / 1.5);
    }
  });
  document.addEventListener("keyup", (e) => {
    if ((e.code === "Space" || e.key === " ") && state.spaceDown) {
      e.preventDefault();
      setPanKey(false);
    }
  });
  window.addEventListener("blur", () => setPanKey(false));
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(layout, 100);
  });
  window.addEventListener("error", (e) => setStatus("error", `Unexpected error: ${e.message}`));
  window.addEventListener("unhandledrejection", (e) => setStatus("error", `Unexpected error: ${e.reason}`));

  setTool("brush");
  updateButtons();
  loadModels();
})();
