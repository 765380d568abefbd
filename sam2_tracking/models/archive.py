"""Checks of a checkpoint file's zip directory, made before torch.load materialises a single tensor.

torch.save writes a zip archive (data.pkl plus one entry per storage), and torch.load allocates each storage at
the size the zip's central directory declares for its entry, then inflates into it. A deflated entry of a few MB
can declare gigabytes (zeros compress about 1000 to 1), so the file's size on disk says nothing about what loading
it costs. Here the directory is read (never an entry's data) and the archive refused when its entries are too many,
declare more bytes in all than the checkpoint cap, or expand at a ratio no checkpoint has. Only zip archives are
accepted: the format before PyTorch 1.6 has no directory to check.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from sam2_tracking.models.config import ModelError

# SAM2.1 Large holds about 1,100 tensors (one entry each, plus data.pkl and a few small records).
MAX_CHECKPOINT_ENTRIES = 20_000
# zipfile reads the whole directory into memory: a few long names an entry at most (torch's are archive/data/<n>).
MAX_DIRECTORY_BYTES = 16 * 1024**2
# torch.save stores entries uncompressed; an entry someone deflated by hand shrinks a little (floats barely compress).
# A large entry that expands over 100 times is a bomb (zeros deflate about 1,030 to 1), whatever the total says.
MAX_ENTRY_RATIO = 100
RATIO_CHECKED_FROM_BYTES = 1024**2  # small records (version, byteorder) may well deflate far
# The compression methods torch's zip reader (miniz) inflates.
READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def check_checkpoint_archive(path: Path, max_bytes: int) -> int:
    """Refuse (ModelError) a checkpoint whose zip directory declares more than max_bytes of data in all, too many
    entries, or an entry that expands over MAX_ENTRY_RATIO times; returns the declared total. Reads the directory
    only (its size is bounded before zipfile builds an object per entry); nothing is extracted."""
    from sam2_tracking.upload_checks import zip_directory

    path = Path(path)
    unreadable = f"checkpoint {path.name} is not a readable PyTorch file"
    try:
        directory = zip_directory(path, MAX_CHECKPOINT_ENTRIES)
    except OSError as exc:
        raise ModelError(f"{unreadable} ({exc.strerror or type(exc).__name__})") from exc
    if directory is None:
        raise ModelError(f"{unreadable} (not the zip archive torch.save writes since PyTorch 1.6: load it and save "
                         "it again with a current torch.save)")
    entries, directory_bytes = directory
    if entries > MAX_CHECKPOINT_ENTRIES or directory_bytes > MAX_DIRECTORY_BYTES:
        raise ModelError(f"refusing checkpoint {path.name}: its zip directory holds more than "
                         f"{MAX_CHECKPOINT_ENTRIES:,} entries or {MAX_DIRECTORY_BYTES // 1024**2} MB, far more than "
                         "any SAM2 checkpoint")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ModelError(f"{unreadable} ({type(exc).__name__}: {exc})"[:400]) from exc
    total = sum(info.file_size for info in infos)
    if total > max_bytes:
        raise ModelError(f"refusing checkpoint {path.name}: its entries declare {total:,} bytes, over the "
                         f"{max_bytes:,}-byte cap (SAM2T_MAX_CHECKPOINT_BYTES); nothing was loaded")
    for info in infos:
        if info.compress_type not in READABLE_METHODS:
            raise ModelError(f"{unreadable} (entry {info.filename[:100]!r} uses zip compression method "
                             f"{info.compress_type}, which torch cannot read)")
        if info.file_size >= RATIO_CHECKED_FROM_BYTES and info.file_size > MAX_ENTRY_RATIO * max(info.compress_size, 1):
            raise ModelError(f"refusing checkpoint {path.name}: entry {info.filename[:100]!r} expands "
                             f"{info.compress_size:,} bytes to {info.file_size:,}, over {MAX_ENTRY_RATIO} times: no "
                             "checkpoint compresses like that (a zip bomb?); nothing was loaded")
    return total
