// Context Encoder web app: paint a hole, send image + full-resolution mask to /api/inpaint, compare, download.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const HOLE = "#ffffff"; // colour of the hole in the full-resolution mask canvas
  const OVERLAY = getComputedStyle(document.documentElement).getPropertyValue("--hole").trim() || "#ff2d6f";

  const els = {
    status: $("status"), file: $("file"), stage: $("stage"), source: $("source"), overlay: $("overlay"),
    cursor: $("cursor"), size: $("size"), sizeLabel: $("size-label"), undo: $("undo"), clear: $("clear"),
    model: $("model"), method: $("method"), inpaint: $("inpaint"), download: $("download"), reuse: $("reuse"),
    compare: $("compare"), before: $("before"), after: $("after"), divider: $("divider"), split: $("split"),
    imageInfo: $("image-info"), resultInfo: $("result-info"), resultHint: $("result-hint"),
  };

  const state = {
    file: null, // the File sent to the server (the original bytes, never re-encoded)
    stem: "image",
    width: 0,
    height: 0,
    sourceURL: null,
    resultURL: null,
    resultBlob: null,
    ops: [], // paint operations in image pixels; undo drops the last and replays the rest
    drawing: null, // the operation being drawn
    tool: "brush",
    scale: 1, // display px per image px
    busy: false,
    limits: null,
    modelsAvailable: false,
  };

  // The mask at the image's full resolution: hole pixels opaque, others transparent.
  const mask = document.createElement("canvas");
  let maskCtx = null;

  // ------------------------------------------------------------------------------------------ status

  let ticker = null;
  function setStatus(kind, text) {
    clearInterval(ticker);
    ticker = null;
    els.status.dataset.state = kind;
    els.status.textContent = text;
    if (kind === "error") console.error(text);
  }

  function busyStatus(text) {
    setStatus("busy", text);
    const start = performance.now();
    ticker = setInterval(() => {
      els.status.textContent = `${text} ${((performance.now() - start) / 1000).toFixed(0)} s`;
    }, 1000);
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
        opt.textContent = s.image_size ? `${m.name} (${s.image_size} px)` : m.name;  // short; details on hover
        opt.title = bits.join(", ");
        opt.selected = m.name === info.default;
        els.model.append(opt);
      }
      const available = Object.fromEntries(info.methods.map((m) => [m.name, m.available]));
      for (const opt of els.method.options) opt.disabled = !available[opt.value.split("+")[0]];
      state.modelsAvailable = info.models.length > 0;
      if (!state.modelsAvailable && available.telea) els.method.value = "telea";
      updateButtons();
      if (!state.modelsAvailable) {
        setStatus("error", "This server has no models: only OpenCV Telea works (start it with --checkpoint CKPT).");
      } else {
        setStatus("idle", "Open an image (or drop one here), paint over what to remove, then press Inpaint.");
      }
    } catch (err) {
      setStatus("error", `Could not load the model list: ${err.message}`);
    }
  }

  // ------------------------------------------------------------------------------------------- image

  async function openFile(file) {
    if (!file) return;
    if (state.busy) {
      setStatus("error", "Wait for the running inpainting to finish before opening another image.");
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
    if (state.sourceURL) URL.revokeObjectURL(state.sourceURL);
    Object.assign(state, { file, width: w, height: h, sourceURL: url, ops: [], drawing: null });
    state.stem = (file.name || "image").replace(/\.[^.]+$/, "") || "image";
    els.source.src = url;
    els.before.src = url;
    els.stage.classList.remove("empty");
    els.imageInfo.textContent = `${file.name} · ${w}×${h} · ${megabytes(file.size)}`;
    clearResult();
    layout();
    updateButtons();
    setStatus("idle", `Loaded ${file.name} (${w}×${h}). Paint over what to remove, then press Inpaint.`);
  }

  // Fit the image into its pane; the overlay canvas gets the display size times the pixel ratio.
  function layout() {
    if (!state.width) return;
    const pane = els.stage.parentElement;
    const availW = pane.clientWidth - 24;
    const availH = Math.max(240, window.innerHeight - els.stage.getBoundingClientRect().top - 60);
    const scale = Math.min(8, availW / state.width, availH / state.height); // small images are enlarged
    const dw = Math.max(1, Math.round(state.width * scale));
    const dh = Math.max(1, Math.round(state.height * scale));
    state.scale = dw / state.width;
    for (const el of [els.stage, els.compare]) {
      el.style.width = `${dw}px`;
      el.style.height = `${dh}px`;
    }
    const ratio = window.devicePixelRatio || 1;
    els.overlay.width = Math.round(dw * ratio);
    els.overlay.height = Math.round(dh * ratio);
    redrawOverlay();
    updateSizeLabel();
  }

  // ------------------------------------------------------------------------------------------- mask

  function drawOp(ctx, op, colour, from = 0) {
    ctx.save();
    ctx.globalCompositeOperation = op.erase ? "destination-out" : "source-over";
    ctx.fillStyle = colour;
    ctx.strokeStyle = colour;
    if (op.kind === "box") {
      ctx.fillRect(op.x, op.y, op.w, op.h);
    } else {
      const pts = op.points;
      ctx.lineWidth = op.size;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      if (pts.length === 1) {
        ctx.beginPath();
        ctx.arc(pts[0][0], pts[0][1], op.size / 2, 0, 2 * Math.PI);
        ctx.fill();
      } else {
        ctx.beginPath();
        const start = Math.max(0, from - 1);
        ctx.moveTo(pts[start][0], pts[start][1]);
        for (let i = start + 1; i < pts.length; i++) ctx.lineTo(pts[i][0], pts[i][1]);
        ctx.stroke();
      }
    }
    ctx.restore();
  }

  function overlayContext() {
    const ctx = els.overlay.getContext("2d");
    const k = els.overlay.width / state.width;
    ctx.setTransform(k, 0, 0, k, 0, 0); // draw in image pixels
    return ctx;
  }

  function redrawOverlay(preview = null) {
    if (!state.width) return;
    const ctx = els.overlay.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, els.overlay.width, els.overlay.height);
    ctx.globalCompositeOperation = "source-over";
    ctx.drawImage(mask, 0, 0, els.overlay.width, els.overlay.height);
    ctx.globalCompositeOperation = "source-in";
    ctx.fillStyle = OVERLAY;
    ctx.fillRect(0, 0, els.overlay.width, els.overlay.height);
    ctx.globalCompositeOperation = "source-over";
    if (preview) {
      const octx = overlayContext();
      drawOp(octx, preview, preview.erase ? "rgba(0,0,0,0.5)" : OVERLAY);
      octx.setTransform(1, 0, 0, 1, 0, 0);
    }
  }

  function replayMask() {
    maskCtx.clearRect(0, 0, state.width, state.height);
    for (const op of state.ops) drawOp(maskCtx, op, HOLE);
    redrawOverlay();
  }

  function imagePoint(event) {
    const r = els.overlay.getBoundingClientRect();
    const x = ((event.clientX - r.left) / r.width) * state.width;
    const y = ((event.clientY - r.top) / r.height) * state.height;
    return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
  }

  const brushSize = () => Math.max(1, Number(els.size.value) / state.scale); // image px

  function pointerDown(event) {
    if (!state.width || state.busy || event.button !== 0) return;
    event.preventDefault();
    els.overlay.setPointerCapture(event.pointerId);
    const p = imagePoint(event);
    if (state.tool === "box") {
      state.drawing = { kind: "box", start: p, x: p[0], y: p[1], w: 0, h: 0, erase: false };
    } else {
      state.drawing = { kind: "stroke", points: [p], size: brushSize(), erase: state.tool === "eraser" };
      drawOp(maskCtx, state.drawing, HOLE);
      drawOp(overlayContext(), state.drawing, OVERLAY);
    }
  }

  function pointerMove(event) {
    moveCursor(event);
    const op = state.drawing;
    if (!op) return;
    const p = imagePoint(event);
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

  function pointerUp() {
    const op = state.drawing;
    if (!op) return;
    state.drawing = null;
    if (op.kind === "box") {
      delete op.start;
      if (op.w < 1 || op.h < 1) {
        redrawOverlay();
        return;
      }
      drawOp(maskCtx, op, HOLE);
    }
    state.ops.push(op);
    redrawOverlay();
    updateButtons();
  }

  function moveCursor(event) {
    const show = state.width && state.tool !== "box" && event && event.type !== "pointerleave";
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

  function undo() {
    if (!state.ops.length || state.busy) return;
    state.ops.pop();
    replayMask();
    updateButtons();
  }

  function clearMask() {
    if (state.busy) return;
    state.ops = [];
    replayMask();
    updateButtons();
  }

  function updateSizeLabel() {
    const px = Number(els.size.value);
    els.sizeLabel.textContent = state.width && Math.abs(state.scale - 1) > 0.01 ? `${px} px (${Math.round(px / state.scale)} in image)` : `${px} px`;
  }

  function setTool(tool) {
    state.tool = tool;
    for (const input of document.querySelectorAll('input[name="tool"]')) input.checked = input.value === tool;
    els.stage.classList.remove("brush", "eraser", "box");
    els.stage.classList.add(tool);
  }

  // The mask as a binary PNG at the image's full resolution: white = hole, black = keep.
  async function maskPNG() {
    const data = maskCtx.getImageData(0, 0, state.width, state.height);
    const px = data.data;
    let holes = 0;
    for (let i = 0; i < px.length; i += 4) {
      const hole = px[i + 3] >= 128;
      const v = hole ? 255 : 0;
      px[i] = v;
      px[i + 1] = v;
      px[i + 2] = v;
      px[i + 3] = 255;
      holes += hole;
    }
    const out = document.createElement("canvas");
    out.width = state.width;
    out.height = state.height;
    out.getContext("2d").putImageData(data, 0, 0);
    const blob = await new Promise((resolve, reject) =>
      out.toBlob((b) => (b ? resolve(b) : reject(new Error("could not encode the mask"))), "image/png"),
    );
    return { blob, holes };
  }

  // ----------------------------------------------------------------------------------------- inpaint

  async function inpaint() {
    if (state.busy) return;
    if (!state.file) {
      setStatus("error", "Open an image first.");
      return;
    }
    const [method, refine] = els.method.value.split("+");
    if (method === "model" && !state.modelsAvailable) {
      setStatus("error", "This server has no models: choose OpenCV Telea.");
      return;
    }
    setBusy(true);
    const label = method === "model" ? els.model.value : els.method.selectedOptions[0].textContent;
    busyStatus(`Inpainting ${state.width}×${state.height} with ${label}…`);
    const started = performance.now();
    try {
      const { blob, holes } = await maskPNG();
      if (!holes) {
        setStatus("error", "The mask is empty: paint over the part of the image to fill first.");
        return;
      }
      const form = new FormData();
      form.append("image", state.file, state.file.name || "image");
      form.append("mask", blob, "mask.png");
      form.append("method", method);
      if (method === "model") form.append("model", els.model.value);
      if (refine) form.append("refine", refine);
      let res;
      try {
        res = await fetch("/api/inpaint", { method: "POST", body: form });
      } catch (err) {
        setStatus("error", `Could not reach the server: ${err.message}`);
        return;
      }
      if (!res.ok) {
        setStatus("error", `Inpainting failed: ${await errorMessage(res)}`);
        return;
      }
      const result = await res.blob();
      await showResult(result);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const server = res.headers.get("X-Inpaint-Seconds");
      els.resultInfo.textContent = `${label} · ${state.width}×${state.height} · ${holes.toLocaleString()} hole px`;
      setStatus("ok", `Done in ${seconds} s${server ? ` (server ${Number(server).toFixed(2)} s)` : ""}. Drag the slider to compare; Download PNG saves the result.`);
    } catch (err) {
      setStatus("error", `Inpainting failed: ${err.message}`);
    } finally {
      setBusy(false);
    }
  }

  async function showResult(blob) {
    if (state.resultURL) URL.revokeObjectURL(state.resultURL);
    state.resultBlob = blob;
    state.resultURL = URL.createObjectURL(blob);
    els.after.src = state.resultURL;
    await els.after.decode().catch(() => {
      throw new Error("the server's answer is not an image this browser can show");
    });
    els.compare.hidden = false;
    els.resultHint.hidden = true;
    els.download.href = state.resultURL;
    els.download.download = `${state.stem}-inpainted.png`;
    setSplit(Number(els.split.value));
    updateButtons();
  }

  function clearResult() {
    if (state.resultURL) URL.revokeObjectURL(state.resultURL);
    state.resultURL = null;
    state.resultBlob = null;
    els.after.removeAttribute("src");
    els.compare.hidden = true;
    els.resultHint.hidden = false;
    els.resultInfo.textContent = "";
    els.download.removeAttribute("href");
  }

  function setSplit(percent) {
    els.before.style.clipPath = `inset(0 ${100 - percent}% 0 0)`;
    els.divider.style.left = `${percent}%`;
  }

  function reuseResult() {
    if (!state.resultBlob || state.busy) return;
    openFile(new File([state.resultBlob], `${state.stem}-inpainted.png`, { type: "image/png" }));
  }

  function setBusy(busy) {
    state.busy = busy;
    document.body.classList.toggle("busy", busy);
    updateButtons();
  }

  function updateButtons() {
    const loaded = Boolean(state.width);
    els.undo.disabled = !loaded || state.busy || !state.ops.length;
    els.clear.disabled = !loaded || state.busy || !state.ops.length;
    els.inpaint.disabled = !loaded || state.busy || !state.ops.length;
    els.model.disabled = state.busy || !state.modelsAvailable || !els.method.value.startsWith("model");
    els.reuse.disabled = state.busy || !state.resultURL;
    els.download.setAttribute("aria-disabled", String(!state.resultURL));
  }

  // ------------------------------------------------------------------------------------------ events

  els.file.addEventListener("change", () => {
    openFile(els.file.files[0]);
    els.file.value = "";
  });
  $("open").addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      els.file.click();
    }
  });
  for (const input of document.querySelectorAll('input[name="tool"]')) {
    input.addEventListener("change", () => setTool(input.value));
  }
  els.size.addEventListener("input", updateSizeLabel);
  els.undo.addEventListener("click", undo);
  els.clear.addEventListener("click", clearMask);
  els.inpaint.addEventListener("click", inpaint);
  els.reuse.addEventListener("click", reuseResult);
  els.method.addEventListener("change", updateButtons);
  els.split.addEventListener("input", () => setSplit(Number(els.split.value)));
  els.overlay.addEventListener("pointerdown", pointerDown);
  els.overlay.addEventListener("pointermove", pointerMove);
  els.overlay.addEventListener("pointerup", pointerUp);
  els.overlay.addEventListener("pointercancel", pointerUp);
  els.overlay.addEventListener("pointerleave", moveCursor);

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
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement && e.target.type !== "radio" && e.target.type !== "range") return;
    if (e.target instanceof HTMLSelectElement) return;
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") {
      e.preventDefault();
      undo();
    } else if (!e.ctrlKey && !e.metaKey && !e.altKey) {
      const tool = { b: "brush", e: "eraser", r: "box" }[e.key.toLowerCase()];
      if (tool) setTool(tool);
    }
  });
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
