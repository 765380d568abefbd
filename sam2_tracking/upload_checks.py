"""Cheap checks of an uploaded file against the resource limits, made BEFORE anything is decoded or allocated.

An upload of a few hundred kilobytes can declare frames of 13000x13000 pixels or a zip that expands to gigabytes;
decoding first and checking afterwards is exactly what costs the memory. So every check here reads headers only:
the zip's end-of-central-directory record, each image's PNG/JPEG header, the video container's stream header.
Each raises UploadError (a VideoError, so callers that handle bad videos handle these too) with a message that says
what was wrong and which setting raises the limit.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from sam2_tracking.engine.video import IMAGE_EXTENSIONS, VideoError

# The decoders an image frame may use: a member named .png that is really a TIFF or a PSD must not reach
# Pillow's other (larger, less exercised) decoders.
IMAGE_FORMATS = ("PNG", "JPEG")


class UploadError(VideoError):
    """The upload breaks a resource limit or is malformed; nothing was stored."""


def check_upload_size(path: str | Path, max_bytes: int) -> None:
    size = Path(path).stat().st_size
    if size > max_bytes:
        raise UploadError(
            f"{Path(path).name} is {_mb(size)}, over the upload limit of {_mb(max_bytes)} "
            "(setting SAM2T_MAX_UPLOAD_BYTES)"
        )


def check_frame_size(width: int, height: int, max_pixels: int, what: str) -> None:
    """Refuse frames larger than max_pixels (width*height), or with no size at all."""
    if width <= 0 or height <= 0:
        raise UploadError(f"{what}: the frame size cannot be read from its header")
    if width * height > max_pixels:
        raise UploadError(
            f"{what}: frames are {width}x{height} ({width * height:,} pixels), over the limit of {max_pixels:,} "
            "pixels (setting SAM2T_MAX_FRAME_PIXELS); scale the video down, e.g. to 3840 pixels wide"
        )


def check_zip_archive(path: str | Path, max_members: int, max_bytes: int) -> None:
    """Refuse a zip with too many files or a declared uncompressed total over max_bytes.

    The members are counted by walking the central directory's fixed-size headers, stopping past the limit, before
    zipfile parses it (zipfile builds an object per entry, and the count in the end record can lie). Declared sizes
    are what zipfile enforces when reading (a member never yields more bytes than its header says), so summing them
    bounds what the archive can expand to.
    """
    path = Path(path)
    try:
        directory = zip_directory(path, max_members)
    except OSError as exc:
        raise UploadError(f"{path.name} cannot be read: {exc}") from exc
    if directory is None:
        raise UploadError(f"{path.name} is not a valid zip file, or it is truncated")
    entries = directory[0]
    if entries > max_members:
        raise UploadError(
            f"{path.name} holds more than {max_members:,} files, the limit (setting SAM2T_MAX_ZIP_MEMBERS)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise UploadError(f"{path.name} is not a valid zip file, or it is truncated ({exc})") from exc
    total = sum(info.file_size for info in infos)
    if total > max_bytes:
        raise UploadError(
            f"{path.name} expands to {_mb(total)}, over the limit of {_mb(max_bytes)} (setting SAM2T_MAX_ZIP_BYTES)"
        )


def zip_directory(path: str | Path, limit: int) -> tuple[int, int] | None:
    """(entries, bytes) of a zip's central directory, the entries counted up to limit + 1 without building anything
    per entry (zipfile.ZipFile reads the whole directory and builds an object per entry, so look first); None if it
    is not a zip or is malformed. Raises OSError. Model checkpoints (torch's zip format) are looked at here too
    (models/archive.py)."""
    import struct

    with open(path, "rb") as handle:
        try:
            # zipfile's own end-record reader (stable since Python 2): directory size and where it ends.
            end_record = zipfile._EndRecData(handle)  # noqa: SLF001
            entries = None if end_record is None else _count_directory_entries(handle, end_record, limit)
        except (zipfile.BadZipFile, struct.error, ValueError, EOFError):  # a zip64 record spanning disks, say
            return None
    return None if entries is None else (entries, int(end_record[zipfile._ECD_SIZE]))  # noqa: SLF001


def _count_directory_entries(handle, end_record, limit: int) -> int | None:
    """Each entry is a 46-byte fixed header followed by its name, extra field and comment."""
    import struct

    size = int(end_record[zipfile._ECD_SIZE])  # noqa: SLF001
    start = int(end_record[zipfile._ECD_LOCATION]) - size  # noqa: SLF001
    if end_record[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:  # noqa: SLF001
        start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
    if start < 0:
        return None
    handle.seek(start)
    count, position = 0, 0
    while position < size:
        header = handle.read(46)
        if len(header) < 46 or header[:4] != b"PK\x01\x02":
            return None
        name_len, extra_len, comment_len = struct.unpack("<HHH", header[28:34])
        handle.seek(name_len + extra_len + comment_len, 1)
        position += 46 + name_len + extra_len + comment_len
        count += 1
        if count > limit:
            break
    return count


def check_image_sequence(path: str | Path, max_pixels: int) -> tuple[int, int]:
    """Read every frame's header (never its pixels) in a zip or folder of JPEG/PNG frames: each must be a PNG or
    JPEG within max_pixels, all of one size. Returns (width, height)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    archive = zipfile.ZipFile(path) if not path.is_dir() else None
    try:
        if archive is not None:
            names = [n for n in archive.namelist() if _is_frame_name(n)]
        else:
            names = sorted(p.name for p in path.iterdir() if p.is_file() and _is_frame_name(p.name))
        if not names:
            raise UploadError(f"{path.name} holds no JPEG or PNG images ({', '.join(IMAGE_EXTENSIONS)})")
        first_size = None
        for name in names:
            try:
                handle = archive.open(name) if archive is not None else open(path / name, "rb")  # noqa: SIM115
                with handle, Image.open(handle, formats=IMAGE_FORMATS) as image:
                    size = image.size  # from the header: Pillow decodes pixels only on load()
            except Image.DecompressionBombError as exc:  # over Pillow's own cap (~179 Mpx), so over ours too
                raise UploadError(
                    f"{path.name}: {name} is larger than the limit of {max_pixels:,} pixels a frame "
                    f"(setting SAM2T_MAX_FRAME_PIXELS; {exc})"
                ) from exc
            except UnidentifiedImageError as exc:  # its text names Python objects, not the problem
                raise UploadError(f"{path.name}: {name} is not a PNG or JPEG image") from exc
            except (OSError, EOFError, zipfile.BadZipFile, ValueError, SyntaxError) as exc:
                raise UploadError(f"{path.name}: {name} is not a readable PNG or JPEG image ({exc})") from exc
            check_frame_size(size[0], size[1], max_pixels, f"{path.name}: {name}")
            if first_size is None:
                first_size = size
            elif size != first_size:
                raise UploadError(
                    f"{path.name}: {name} is {size[0]}x{size[1]}, but {names[0]} is {first_size[0]}x{first_size[1]}: "
                    "every frame of an image sequence must have the same size"
                )
        return first_size
    finally:
        if archive is not None:
            archive.close()


def check_video_header(path: str | Path, max_pixels: int) -> tuple[int, int]:
    """Frame size of a video file from its container and stream headers. FFmpeg's max_pixels option makes any
    trial decode during probing refuse oversized frames instead of allocating them. Returns (width, height)."""
    import av

    path = Path(path)
    try:
        container = av.open(str(path), stream_options=[{"max_pixels": str(max_pixels)}])
    except av.error.FFmpegError as exc:
        # strerror only: the full text repeats the server's temporary path of the upload.
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise UploadError(f"{path.name} is not a video FFmpeg can read, or it is truncated ({reason})") from exc
    try:
        if not container.streams.video:
            raise UploadError(f"{path.name} has no video stream (is it an audio file?)")
        context = container.streams.video[0].codec_context
        width, height = (int(context.width), int(context.height)) if context is not None else (0, 0)
    finally:
        container.close()
    if width == 0 or height == 0:
        # With max_pixels set, FFmpeg leaves the size unset when the frames are over it.
        raise UploadError(
            f"{path.name}: its frame size cannot be read, or its frames are over the limit of {max_pixels:,} pixels "
            "(setting SAM2T_MAX_FRAME_PIXELS)"
        )
    check_frame_size(width, height, max_pixels, path.name)
    return width, height


def check_video_upload(path: str | Path, settings) -> None:
    """All the header checks for a video file, zip of frames or folder of frames entering the app: the one check
    made wherever a video enters (the app's upload in library.add_uploaded_video, the CLI's track and convert
    --video), so every entry point applies the same caps before a frame is decoded."""
    path = Path(path)
    if path.is_dir():
        check_image_sequence(path, settings.max_frame_pixels)
        return
    check_upload_size(path, settings.max_upload_bytes)
    if path.suffix.lower() == ".zip":
        check_zip_archive(path, settings.max_zip_members, settings.max_zip_bytes)
        check_image_sequence(path, settings.max_frame_pixels)
    else:
        check_video_header(path, settings.max_frame_pixels)


def _is_frame_name(name: str) -> bool:
    p = Path(name)
    return (not name.endswith("/") and p.suffix.lower() in IMAGE_EXTENSIONS and not name.startswith("__MACOSX/")
            and not p.name.startswith("."))


def _mb(size: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size} bytes"
