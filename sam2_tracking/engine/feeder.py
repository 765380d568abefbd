"""The frame feeder: decodes and preprocesses frames ahead of the model in worker threads.

It is the `images` entry of the tracker's SAM2 inference state. For each propagation pass the tracker tells it which
frames SAM2 will ask for, in order (`expect`); worker threads take frames from the source one at a time (decoding is
sequential, so under a lock), resize them with PIL outside the lock (PyAV decoding and PIL resizing release the GIL,
so threads scale), and hand over uint8 images. The model's thread only copies a uint8 image to the model's device
(from pinned memory, without blocking, on CUDA) and normalises it there.

Exactness: sam2's load_video_frames resizes with PIL, divides by 255 in float64, casts to float32, then subtracts the
mean and divides by the std in float32. Dividing the uint8 value by 255 directly in float32 gives the same bits
(double rounding of a quotient from 53 to 24 bits is innocuous), and float32 subtraction and division are correctly
rounded on CPU and GPU alike (dividing by a tensor: see _normalise), so the tensors, and therefore the masks, are
bit-identical to stock.

Memory: at most `depth` preprocessed frames (image_size^2 x 3 bytes each) wait between the workers and the model,
plus, per worker, the frame it is decoding. Frames asked for outside the plan (seeding, a preview of the start frame)
are read synchronously through the same lock, from the source's small byte-bounded cache when they are there.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from typing import Any

import numpy as np

from sam2_tracking.engine.video import FrameSource

# ImageNet statistics, as sam2.utils.misc.load_video_frames normalises frames.
IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)


def default_feeder_threads() -> int:
    """Half the CPUs (the other half runs the model's own CPU work, the writer and the consumer), 1 to 8."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def resize_for_model(rgb: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (image_size, image_size, 3), resized exactly as sam2's frame loader does (PIL's default filter)."""
    from PIL import Image

    return np.array(Image.fromarray(rgb).resize((image_size, image_size)))


class FrameFeeder:
    """Preprocessed frames for SAM2, decoded ahead in `threads` worker threads.

    keep_rgb: frame indices whose full-resolution RGB frame the caller wants afterwards (previews); a worker keeps
    the frame it decoded for those until take_rgb() collects it, so no frame is decoded twice for a preview.
    Stage timings (seconds of thread time, summed over threads) are kept in `stage_seconds` for the benchmarks.
    """

    def __init__(
        self,
        source: FrameSource,
        image_size: int,
        device: Any = "cpu",
        threads: int | None = None,
        keep_rgb: Collection[int] = (),
    ) -> None:
        import torch

        if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
            raise ValueError(f"feeder threads must be at least 1, got {threads!r}")
        self._torch = torch
        self.source = source
        self.image_size = int(image_size)
        self.device = torch.device(device)
        self.threads = int(threads) if threads is not None else default_feeder_threads()
        self.depth = 2 * self.threads + 2
        self._keep_rgb = frozenset(int(i) for i in keep_rgb)
        if hasattr(source, "keep_seek_prefix"):
            source.keep_seek_prefix = True  # a later reverse pass reads the GOP head that seeding decoded
        self._kept: dict[int, np.ndarray] = {}
        self._mean = torch.tensor(IMG_MEAN, dtype=torch.float32, device=self.device)[:, None, None]
        self._std = torch.tensor(IMG_STD, dtype=torch.float32, device=self.device)[:, None, None]
        # A tensor, not the number 255.0: on CUDA, division by a Python scalar runs as multiplication by its
        # reciprocal, one bit off stock's division for 160 of the 256 pixel values; tensor by tensor is true division.
        self._255 = torch.tensor(255.0, dtype=torch.float32, device=self.device)
        self._cuda = self.device.type == "cuda"
        self._source_lock = threading.Lock()  # the source (its decoder and cache) is used by one thread at a time
        self._cond = threading.Condition()
        self._ready: dict[int, Any] = {}  # frame_idx -> uint8 image waiting for the model
        self._slots = threading.Semaphore(self.depth)
        self._plan: list[int] = []
        self._plan_pos: dict[int, int] = {}
        self._next_pos = 0  # position in the plan of the next frame the model should ask for
        self._frames: Iterator[tuple[int, np.ndarray]] | None = None
        self._workers: list[threading.Thread] = []
        self._generation = 0
        self._error: BaseException | None = None
        self._closed = False
        self.stage_seconds = {"decode": 0.0, "resize": 0.0, "handover": 0.0}
        self.wait_seconds = 0.0  # wall time the model's thread waited for a planned frame (the GPU starved)
        self._stage_lock = threading.Lock()

    def __len__(self) -> int:
        return self.source.frame_count

    # -- the plan
    def expect(self, frame_indices: Sequence[int]) -> None:
        """SAM2 will ask for these frames in this order (one propagation pass): start decoding them ahead."""
        self._stop_workers()
        plan = [int(i) for i in frame_indices]
        with self._cond:
            self._generation += 1
            self._plan = plan
            self._plan_pos = {idx: pos for pos, idx in enumerate(plan)}
            self._next_pos = 0
            self._ready.clear()
            self._error = None
            self._slots = threading.Semaphore(self.depth)
            self._frames = _iter_runs(self.source, plan) if plan else None
        if not plan:
            return
        generation = self._generation
        self._workers = [
            threading.Thread(target=self._work, args=(generation,), name=f"frame-feeder-{k}", daemon=True)
            for k in range(min(self.threads, len(plan)))
        ]
        for worker in self._workers:
            worker.start()

    def _work(self, generation: int) -> None:
        torch = self._torch
        try:
            while True:
                slots = self._slots
                slots.acquire()
                with self._cond:
                    if generation != self._generation or self._closed:
                        slots.release()
                        return
                t0 = time.thread_time()
                with self._source_lock:
                    if generation != self._generation or self._frames is None:
                        slots.release()
                        return
                    got = next(self._frames, None)
                t1 = time.thread_time()
                if got is None:
                    slots.release()
                    return
                idx, rgb = got
                resized = resize_for_model(rgb, self.image_size)
                t2 = time.thread_time()
                image = torch.from_numpy(np.ascontiguousarray(resized))
                if self._cuda:
                    image = image.pin_memory()
                t3 = time.thread_time()
                with self._stage_lock:
                    self.stage_seconds["decode"] += t1 - t0
                    self.stage_seconds["resize"] += t2 - t1
                    self.stage_seconds["handover"] += t3 - t2
                with self._cond:
                    if generation != self._generation:
                        return
                    self._ready[idx] = image
                    if idx in self._keep_rgb:
                        self._kept[idx] = rgb
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the model's thread, which raises it
            with self._cond:
                if generation == self._generation:
                    self._error = exc
                    self._cond.notify_all()

    def _stop_workers(self) -> None:
        with self._cond:
            self._generation += 1
            self._frames = None
            self._ready.clear()
            self._cond.notify_all()
        slots = self._slots
        for _ in self._workers:
            slots.release()  # wake workers waiting for a slot; they see the new generation and leave
        for worker in self._workers:
            worker.join()
        self._workers = []

    # -- what SAM2 reads
    def __getitem__(self, frame_idx: int) -> Any:
        return self._normalise(self.take_uint8(frame_idx))

    def take_uint8(self, frame_idx: int) -> Any:
        """The resized frame as the uint8 (image_size, image_size, 3) tensor handed to the model's thread (pinned on
        CUDA): a planned frame from the workers, any other read now."""
        idx = int(frame_idx)
        image = self._take_planned(idx)
        if image is None:
            with self._source_lock:
                rgb = self.source.read(idx)
            image = self._torch.from_numpy(np.ascontiguousarray(resize_for_model(rgb, self.image_size)))
        return image

    def _take_planned(self, idx: int) -> Any:
        with self._cond:
            # Only the next planned frame comes from the workers; anything else (a seed frame, a frame asked out of
            # order) is read now, so a surprise never makes the plan skip frames it will be asked for.
            if self._plan_pos.get(idx) != self._next_pos:
                return None
            pos = self._next_pos
            waited = time.perf_counter()
            while idx not in self._ready:
                if self._error is not None:
                    raise self._error
                if not any(w.is_alive() for w in self._workers):
                    raise RuntimeError(f"the frame feeder stopped before frame {idx}")
                self._cond.wait(timeout=1.0)
            image = self._ready.pop(idx)
            self._next_pos = pos + 1
            self.wait_seconds += time.perf_counter() - waited
        self._slots.release()
        return image

    def _normalise(self, image: Any) -> Any:
        torch = self._torch
        image = image.to(self.device, non_blocking=True).permute(2, 0, 1).contiguous()
        image = image.to(torch.float32) / self._255
        image -= self._mean
        image /= self._std
        return image

    def take_rgb(self, frame_idx: int) -> np.ndarray:
        """The full-resolution RGB frame frame_idx: the one a worker kept for it, else read (from the source's cache
        when it is there, as for the seeded frame that SAM2 never asks the feeder for)."""
        with self._cond:
            rgb = self._kept.pop(int(frame_idx), None)
        if rgb is not None:
            return rgb
        with self._source_lock:
            return self.source.read(int(frame_idx))

    def close(self) -> None:
        self._closed = True
        self._stop_workers()
        self._kept.clear()


def _iter_runs(source: FrameSource, plan: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Decode the planned frames in order, run by run (consecutive frames, forward or backward), so a video is read
    sequentially (and backward in GOP blocks) rather than by a seek per frame."""
    pos = 0
    while pos < len(plan):
        step = 1 if pos + 1 == len(plan) or plan[pos + 1] >= plan[pos] else -1
        end = pos
        while end + 1 < len(plan) and plan[end + 1] - plan[end] == step:
            end += 1
        stop = plan[end] + step
        yield from source.iter_frames(plan[pos], stop if stop >= 0 else None, step)
        pos = end + 1
