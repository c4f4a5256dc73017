// Geometry of the region selection: rectangles in window (CSS) pixels, mapped to pixels of
// the captured image (which differ on HiDPI screens and when the window is scaled).

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The rectangle spanned by two corners, whichever way the drag went. */
export function normalizeRect(a: { x: number; y: number }, b: { x: number; y: number }): Rect {
  return { x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), width: Math.abs(a.x - b.x), height: Math.abs(a.y - b.y) };
}

/** Moves (or with `resize`, grows or shrinks) the rectangle by `step` for an arrow key, inside `bounds`. */
export function nudge(r: Rect, key: string, step: number, resize: boolean, bounds: { width: number; height: number }): Rect {
  const dx = key === "ArrowLeft" ? -step : key === "ArrowRight" ? step : 0;
  const dy = key === "ArrowUp" ? -step : key === "ArrowDown" ? step : 0;
  if (resize) {
    const width = Math.max(4, Math.min(bounds.width - r.x, r.width + dx));
    const height = Math.max(4, Math.min(bounds.height - r.y, r.height + dy));
    return { ...r, width, height };
  }
  const x = Math.max(0, Math.min(bounds.width - r.width, r.x + dx));
  const y = Math.max(0, Math.min(bounds.height - r.height, r.y + dy));
  return { ...r, x, y };
}

/** The rectangle in whole pixels of the image, clipped to it. */
export function toImageRect(r: Rect, s: { sx: number; sy: number }, image: { width: number; height: number }): Rect {
  const x = Math.max(0, Math.min(image.width, Math.round(r.x * s.sx)));
  const y = Math.max(0, Math.min(image.height, Math.round(r.y * s.sy)));
  const right = Math.max(x, Math.min(image.width, Math.round((r.x + r.width) * s.sx)));
  const bottom = Math.max(y, Math.min(image.height, Math.round((r.y + r.height) * s.sy)));
  return { x, y, width: right - x, height: bottom - y };
}
