"""The job's writer thread and the overlay previews it renders: the model's thread only tracks, and hands batches
(masks already RLE), preview frames and progress to this thread, which commits, renders and writes them, so the
model never waits on the store."""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable

import numpy as np

from sam2_tracking.types import FrameMask

PROGRESS_WRITE_INTERVAL_S = 0.5
PREVIEW_MAX_WIDTH = 640
# Items (batches of RLE results, preview frames) waiting for the writer thread; bounds what the model can run ahead.
WRITER_QUEUE_ITEMS = 4


def preview_jpeg(rgb: np.ndarray, results: list[FrameMask]) -> bytes:
    """A notification's preview: the frame with the job's masks drawn over it, at most PREVIEW_MAX_WIDTH wide."""
    return overlay_jpeg(rgb, [(r.track_id, r.mask_array(), r.box) for r in results if r.present])


def overlay_jpeg(rgb: np.ndarray, layers: list) -> bytes:
    from PIL import Image

    from sam2_tracking.engine.masks import draw_overlay, resize_for_preview

    overlay = draw_overlay(rgb, layers)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(resize_for_preview(overlay, PREVIEW_MAX_WIDTH))).save(
        buffer, format="JPEG", quality=80
    )
    return buffer.getvalue()


class JobWriter:
    """The writer thread of one job run.

    put() blocks while WRITER_QUEUE_ITEMS items wait, and raises the writer's error (a lost lease, a store error) in
    the model's thread; close() lets it finish what was queued (the batch a stop hands over is committed) and raises
    its error if it had one. on_batch(batch) commits, on_preview(frame_idx, rgb, results) notifies, on_idle() writes
    progress (also every PROGRESS_WRITE_INTERVAL_S while nothing arrives).
    """

    def __init__(self, name: str, on_batch: Callable, on_preview: Callable, on_idle: Callable[[], None]) -> None:
        self.on_batch, self.on_preview, self.on_idle = on_batch, on_preview, on_idle
        self.items: queue.Queue = queue.Queue(maxsize=WRITER_QUEUE_ITEMS)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def put_batch(self, batch: list[FrameMask]) -> None:
        self._put(("batch", batch))

    def put_preview(self, frame_idx: int, rgb: np.ndarray, results: list[FrameMask]) -> None:
        self._put(("preview", frame_idx, rgb, results))

    def _put(self, item: tuple) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.items.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        while self.thread.is_alive():
            try:
                self.items.put(None, timeout=0.5)
                break
            except queue.Full:
                continue
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _loop(self) -> None:
        try:
            while True:
                try:
                    item = self.items.get(timeout=PROGRESS_WRITE_INTERVAL_S)
                except queue.Empty:
                    self.on_idle()
                    continue
                if item is None:
                    return
                if item[0] == "preview":
                    self.on_preview(*item[1:])
                else:
                    self.on_batch(item[1])
                self.on_idle()
        except BaseException as exc:
            self.error = exc
            while True:  # unblock the model's thread; it sees the error at its next put
                try:
                    self.items.get_nowait()
                except queue.Empty:
                    break
