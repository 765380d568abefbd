"""Which frames a tracking run covers, in the order it processes them: the one FramePlan the tracker, the job run,
the CLI and the benchmarks share.

A plan is `num_frames` frames per direction from `start` (the start frame included, None: to the end of the video
or to frame 0), forward, backward, or both (forward first, then backward; the start frame is reported once).
"""

from __future__ import annotations

from dataclasses import dataclass

from sam2_tracking.types import Direction


@dataclass(frozen=True)
class FramePlan:
    start: int
    frame_count: int
    num_frames: int | None = None
    direction: Direction = Direction.FORWARD

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", Direction(self.direction))
        start, count = self.start, self.frame_count
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < count:
            raise ValueError(f"start frame {start!r} is not in the video (frames 0 to {count - 1})")
        if self.num_frames is not None and (isinstance(self.num_frames, bool) or int(self.num_frames) < 1):
            raise ValueError(f"number of frames must be at least 1 (or None for all), got {self.num_frames!r}")

    @classmethod
    def for_job(cls, spec, frame_count: int) -> FramePlan:
        """The plan of a JobSpec (start_frame_idx, num_frames, direction) on a video of frame_count frames."""
        return cls(int(spec.start_frame_idx), int(frame_count), spec.num_frames, spec.direction)

    @property
    def span(self) -> int:
        return self.frame_count if self.num_frames is None else int(self.num_frames)

    @property
    def forward(self) -> range | None:
        if self.direction == Direction.BACKWARD:
            return None
        return range(self.start, min(self.start + self.span, self.frame_count))

    @property
    def backward(self) -> range | None:
        if self.direction == Direction.FORWARD:
            return None
        return range(self.start, max(self.start - self.span, -1), -1)

    @property
    def both(self) -> bool:
        return self.direction == Direction.BOTH

    @property
    def total(self) -> int:
        """Frames the run reports (the start frame once)."""
        return len(self.forward or ()) + len(self.backward or ()) - (1 if self.both else 0)

    def frames(self) -> list[int]:
        """Every frame the run reports, in processing order (the start frame once)."""
        forward = list(self.forward or ())
        backward = list(self.backward or ())
        return forward + backward[1:] if self.both else forward + backward

    def passes(self) -> list[tuple[range, bool]]:
        """(processing order, reverse) per propagation pass. Stock skips a reverse pass from frame 0; a backward run
        from frame 0 still reports frame 0, computed as the one-frame pass it is."""
        passes = []
        if self.forward is not None:
            passes.append((self.forward, False))
        if self.backward is not None and not (self.both and self.start == 0):
            passes.append((self.backward, True))
        return passes

    def key(self) -> list[list[int]]:
        """The ranges as plain lists: saved with a resume point, so a point is never applied to another plan."""
        return [[r.start, r.stop, r.step] if r is not None else [] for r in (self.forward, self.backward)]
