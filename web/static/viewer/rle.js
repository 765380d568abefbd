// Masks: COCO compressed RLE (as the server sends it) decoded here, and turned into the pixels the viewer draws.
// Pure functions on typed arrays; drawing.js puts the pixels on a canvas. RLE runs are column-major (COCO's order):
// position p is pixel (x = floor(p / h), y = p % h), runs alternate off, on, off, ... starting with off.

// pycocotools' rleFrString: 6-bit characters from '0', 5 payload bits each, a continuation bit, a sign bit on the
// last; from the third run on, a value is the difference to the run two before.
export function decodeCounts(s) {
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = 1;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20; p++; k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

// The smallest box holding every "on" pixel: {x0, y0, x1, y1} inclusive, or null for an empty mask.
export function maskBounds(runs, h, w) {
  let x0 = w, x1 = -1, y0 = h, y1 = -1, pos = 0;
  for (let i = 0; i < runs.length; i++) {
    const n = runs[i];
    if (i % 2 === 1 && n > 0) {
      const a = pos, b = pos + n - 1, ca = Math.floor(a / h), cb = Math.floor(b / h);
      x0 = Math.min(x0, ca); x1 = Math.max(x1, cb);
      if (ca === cb) { y0 = Math.min(y0, a % h); y1 = Math.max(y1, b % h); } else { y0 = 0; y1 = h - 1; }
    }
    pos += n;
  }
  return x1 < 0 ? null : { x0, y0, x1, y1 };
}

// The mask inside its box as 0/1 bytes, column-major like the RLE (index (x - x0) * bh + (y - y0)).
export function maskBits(runs, h, box) {
  const bw = box.x1 - box.x0 + 1, bh = box.y1 - box.y0 + 1;
  const bits = new Uint8Array(bw * bh);
  let pos = 0;
  for (let i = 0; i < runs.length; i++) {
    const n = runs[i];
    if (i % 2 === 1 && n > 0) {
      for (let p = pos; p < pos + n;) {
        const x = Math.floor(p / h), y = p % h, len = Math.min(pos + n - p, h - y);
        const o = (x - box.x0) * bh + (y - box.y0);
        bits.fill(1, o, o + len);
        p += len;
      }
    }
    pos += n;
  }
  return bits;
}

// The outline about 2 screen pixels wide: a mask pixel is on the edge when an off pixel lies within t of it along
// its row or column. Four linear passes count how deep into its run each pixel is from each side (the box's border
// counts as off), instead of testing 4t neighbours per pixel: ~2 ms, not ~40, for a large mask at 1080p.
export function maskEdges(bits, bw, bh, t) {
  const edge = new Uint8Array(bw * bh);
  for (let x = 0; x < bw; x++) {
    const o = x * bh;
    for (let y = 0, c = 0; y < bh; y++) { c = bits[o + y] ? c + 1 : 0; if (c && c <= t) edge[o + y] = 1; }
    for (let y = bh - 1, c = 0; y >= 0; y--) { c = bits[o + y] ? c + 1 : 0; if (c && c <= t) edge[o + y] = 1; }
  }
  for (let y = 0; y < bh; y++) {
    for (let x = 0, c = 0; x < bw; x++) { const i = x * bh + y; c = bits[i] ? c + 1 : 0; if (c && c <= t) edge[i] = 1; }
    for (let x = bw - 1, c = 0; x >= 0; x--) { const i = x * bh + y; c = bits[i] ? c + 1 : 0; if (c && c <= t) edge[i] = 1; }
  }
  return edge;
}

// The outline's width in video pixels: about 2 screen pixels when a video fills a ~1400 px wide viewer.
export function outlineWidth(videoWidth) { return Math.max(1, Math.round(videoWidth / 700)); }

export function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

// A mask as RGBA pixels (one little-endian Uint32 each, row-major, ImageData's layout) over its bounding box:
// translucent fill, opaque outline, transparent off the mask. null for an empty mask.
export function maskImage(counts, w, h, colour) {
  const runs = decodeCounts(counts);
  const box = maskBounds(runs, h, w);
  if (!box) return null;
  const bw = box.x1 - box.x0 + 1, bh = box.y1 - box.y0 + 1;
  const bits = maskBits(runs, h, box), edge = maskEdges(bits, bw, bh, outlineWidth(w));
  const [r, g, b] = hexToRgb(colour);
  const fill = ((100 << 24) | (b << 16) | (g << 8) | r) >>> 0, line = ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
  const pixels = new Uint32Array(bw * bh);
  for (let x = 0; x < bw; x++) {
    for (let y = 0; y < bh; y++) {
      const i = x * bh + y;
      if (bits[i]) pixels[y * bw + x] = edge[i] ? line : fill;
    }
  }
  return { pixels, x: box.x0, y: box.y0, w: bw, h: bh };
}
