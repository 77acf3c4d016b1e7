// The mask's pixel work, free of the page: painting operations, growing the holes, the PNG sent to the server.

// Draw one paint operation (a stroke or a box, in image pixels) with `colour`; an eraser operation removes; a
// loaded mask (its canvas: opaque = hole) is drawn as it is. A stroke from point `from` on: drawing a growing
// stroke piece by piece gives what drawing it whole gives.
export function drawOp(ctx, op, colour, from = 0) {
  ctx.save();
  ctx.globalCompositeOperation = op.erase ? "destination-out" : "source-over";
  ctx.fillStyle = colour;
  ctx.strokeStyle = colour;
  if (op.kind === "mask") {
    ctx.drawImage(op.canvas, 0, 0);
  } else if (op.kind === "box") {
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

// Widen the holes (1 in `hole`, a w x h array) in place by `n` px: every pixel whose centre is at most n px
// from a hole pixel's becomes one. Only the holes' box widened by n is visited.
export function growHoles(hole, w, h, n, box) {
  const x0 = Math.max(0, box.x0 - n);
  const y0 = Math.max(0, box.y0 - n);
  const bw = Math.min(w, box.x1 + n + 1) - x0;
  const bh = Math.min(h, box.y1 + n + 1) - y0;
  const far = n + 1;
  const column = new Uint16Array(bw * bh); // squared distance to the nearest hole pixel in the column, capped
  for (let x = 0; x < bw; x++) {
    let d = far;
    for (let y = 0; y < bh; y++) {
      d = hole[(y0 + y) * w + x0 + x] ? 0 : Math.min(far, d + 1);
      column[y * bw + x] = d;
    }
    d = far;
    for (let y = bh - 1; y >= 0; y--) {
      d = hole[(y0 + y) * w + x0 + x] ? 0 : Math.min(far, d + 1);
      const i = y * bw + x;
      column[i] = Math.min(column[i], d) ** 2;
    }
  }
  const r2 = n * n;
  for (let y = 0; y < bh; y++) {
    const row = y * bw;
    for (let x = 0; x < bw; x++) {
      const at = (y0 + y) * w + x0 + x;
      if (hole[at]) continue;
      for (let xx = Math.max(0, x - n), end = Math.min(bw - 1, x + n); xx <= end; xx++) {
        if (column[row + xx] + (xx - x) ** 2 <= r2) {
          hole[at] = 1;
          break;
        }
      }
    }
  }
}

// The mask canvas (opaque = hole) of a w x h image as a binary PNG at that full resolution (white = hole,
// black = keep), its holes grown by `grow` px, the number of hole pixels and their box (x0, y0, x1, y1:
// the first and last hole column and row; x1 = -1 when there are none).
export async function maskPNG(maskCtx, w, h, grow) {
  const data = maskCtx.getImageData(0, 0, w, h);
  const px = data.data;
  const hole = new Uint8Array(w * h);
  const box = { x0: w, y0: h, x1: -1, y1: -1 };
  for (let j = 0; j < hole.length; j++) {
    if (px[4 * j + 3] < 128) continue;
    hole[j] = 1;
    const x = j % w;
    const y = (j - x) / w;
    if (x < box.x0) box.x0 = x;
    if (x > box.x1) box.x1 = x;
    if (y < box.y0) box.y0 = y;
    box.y1 = y;
  }
  if (grow > 0 && box.x1 >= 0) {
    growHoles(hole, w, h, grow, box);
    Object.assign(box, {
      x0: Math.max(0, box.x0 - grow),
      y0: Math.max(0, box.y0 - grow),
      x1: Math.min(w - 1, box.x1 + grow),
      y1: Math.min(h - 1, box.y1 + grow),
    });
  }
  let holes = 0;
  for (let j = 0; j < hole.length; j++) {
    const v = hole[j] ? 255 : 0;
    px[4 * j] = v;
    px[4 * j + 1] = v;
    px[4 * j + 2] = v;
    px[4 * j + 3] = 255;
    holes += hole[j];
  }
  const out = document.createElement("canvas");
  out.width = w;
  out.height = h;
  out.getContext("2d").putImageData(data, 0, 0);
  const blob = await new Promise((resolve, reject) =>
    out.toBlob((b) => (b ? resolve(b) : reject(new Error("could not encode the mask"))), "image/png"),
  );
  return { blob, holes, box };
}

// A mask image (a decoded <img>, any size) as a w x h canvas whose opaque white pixels are the holes: the
// pixels that are light (brightest colour channel >= 128) and opaque (alpha >= 128), so white marks a hole
// and black or transparent keeps the photo, also after a JPEG's noise or a scaling's soft edges. An image of
// another size is scaled to w x h first. Returns the canvas and its number of hole pixels.
export function maskFromImage(img, w, h) {
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(img, 0, 0, w, h);
  const data = ctx.getImageData(0, 0, w, h);
  const px = data.data;
  let holes = 0;
  for (let i = 0; i < px.length; i += 4) {
    const hole = px[i + 3] >= 128 && Math.max(px[i], px[i + 1], px[i + 2]) >= 128;
    px[i] = px[i + 1] = px[i + 2] = 255;
    px[i + 3] = hole ? 255 : 0;
    holes += hole;
  }
  ctx.putImageData(data, 0, 0);
  return { canvas, holes };
}
