// Mask decoding against pycocotools: fixtures/rle.json holds masks, their COCO compressed counts and bbox as
// pycocotools wrote them (tests/test_viewer_js.py checks the file still is its output) and their run lengths.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import test from "node:test";

import { decodeCounts, hexToRgb, maskBits, maskBounds, maskEdges, maskImage, outlineWidth } from
  "../../web/static/viewer/rle.js";

const FIXTURES = JSON.parse(readFileSync(new URL("./fixtures/rle.json", import.meta.url), "utf8"));
const on = (f, x, y) => f.rows[y][x] === "1";

test("the fixtures cover empty, full, long and short runs", () => {
  const names = FIXTURES.map((f) => f.name);
  assert.ok(names.includes("empty") && names.includes("full") && names.includes("noise"));
  assert.ok(FIXTURES.some((f) => f.runs.some((n) => n > 1000)), "a run that needs several characters");
});

for (const f of FIXTURES) {
  test(`decodeCounts gives pycocotools' runs: ${f.name}`, () => {
    const runs = decodeCounts(f.counts);
    assert.deepEqual(runs, f.runs);
    assert.equal(runs.reduce((a, b) => a + b, 0), f.height * f.width);
  });

  test(`maskBounds is pycocotools' bbox: ${f.name}`, () => {
    const box = maskBounds(decodeCounts(f.counts), f.height, f.width);
    const [x, y, w, h] = f.bbox;
    if (w === 0) assert.equal(box, null);
    else assert.deepEqual(box, { x0: x, y0: y, x1: x + w - 1, y1: y + h - 1 });
  });

  test(`maskBits is the mask inside its box: ${f.name}`, () => {
    const box = maskBounds(decodeCounts(f.counts), f.height, f.width);
    if (!box) return;
    const bits = maskBits(decodeCounts(f.counts), f.height, box), bh = box.y1 - box.y0 + 1;
    for (let x = box.x0; x <= box.x1; x++) {
      for (let y = box.y0; y <= box.y1; y++) {
        assert.equal(bits[(x - box.x0) * bh + (y - box.y0)], on(f, x, y) ? 1 : 0, `pixel ${x},${y}`);
      }
    }
  });
}

// The outline by its definition: an "on" pixel with an "off" pixel (or the box's border) within t along its row or
// column, tested neighbour by neighbour.
function edgeByDefinition(bits, bw, bh, x, y, t) {
  const at = (i, j) => i >= 0 && i < bw && j >= 0 && j < bh && bits[i * bh + j] === 1;
  if (!at(x, y)) return 0;
  for (let d = 1; d <= t; d++) {
    if (!at(x - d, y) || !at(x + d, y) || !at(x, y - d) || !at(x, y + d)) return 1;
  }
  return 0;
}

test("maskEdges marks what the definition marks, for outline widths 1 to 3", () => {
  for (const f of FIXTURES) {
    const runs = decodeCounts(f.counts), box = maskBounds(runs, f.height, f.width);
    if (!box) continue;
    const bw = box.x1 - box.x0 + 1, bh = box.y1 - box.y0 + 1, bits = maskBits(runs, f.height, box);
    for (const t of [1, 2, 3]) {
      const edge = maskEdges(bits, bw, bh, t);
      for (let x = 0; x < bw; x++) {
        for (let y = 0; y < bh; y++) {
          assert.equal(edge[x * bh + y], edgeByDefinition(bits, bw, bh, x, y, t), `${f.name} t=${t} at ${x},${y}`);
        }
      }
    }
  }
});

test("maskImage: opaque outline, translucent fill, nothing off the mask, RGBA in ImageData's order", () => {
  const f = FIXTURES.find((g) => g.name === "box with a hole");
  const image = maskImage(f.counts, f.width, f.height, "#ff8000");
  const [x, y] = f.bbox;
  assert.deepEqual([image.x, image.y, image.w, image.h], f.bbox);
  const bytes = new Uint8Array(image.pixels.buffer);
  const rgba = (px, py) => Array.from(bytes.slice(((py - y) * image.w + (px - x)) * 4, ((py - y) * image.w + (px - x)) * 4 + 4));
  assert.deepEqual(rgba(x, y), [255, 128, 0, 255]);  // the box's corner: outline
  assert.deepEqual(rgba(x + 5, y + 5), [255, 128, 0, 100]);  // well inside: fill
  assert.deepEqual(rgba(75, 50), [0, 0, 0, 0]);  // in the hole
  assert.deepEqual(rgba(59, 50), [255, 128, 0, 255]);  // next to the hole: outline
  assert.equal(maskImage(FIXTURES.find((g) => g.name === "empty").counts, 6, 4, "#ffffff"), null);
});

test("outline width and colours", () => {
  assert.equal(outlineWidth(640), 1);
  assert.equal(outlineWidth(1920), 3);
  assert.equal(outlineWidth(100), 1);
  assert.deepEqual(hexToRgb("#1a2b3c"), [26, 43, 60]);
});
