"""Tiny hostile files made in memory: images and videos that claim huge frames, zips that lie about their size or
expand to gigabytes. For the tests (and benchmarks) that prove such input is refused before it costs memory."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib


def png_bytes(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of any declared size: 13000x13000 is ~20 KB, and 500 MB once decoded to RGB."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row = b"\0" * (1 + (width + 7) // 8)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height, 9)) + chunk(b"IEND", b""))


def small_png(width=8, height=8, rgba=False) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA" if rgba else "RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims another size."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9:]


def lying_mkv(size: int = 8000) -> bytes:
    """An MJPEG Matroska file whose headers (container and JPEG) say size x size; 2 KB on disk."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        stream = container.add_stream("mjpeg", rate=5)
        stream.width = stream.height = 256
        stream.pix_fmt = "yuvj420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((256, 256, 3), np.uint8), format="rgb24").reformat(
            format="yuvj420p")
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    data, new = buffer.getvalue(), struct.pack(">H", size)
    for old in (b"\xb0\x82\x01\x00", b"\xba\x82\x01\x00"):  # Matroska PixelWidth / PixelHeight = 256
        data = data.replace(old, old[:2] + new)
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + new + new + data[sof + 9:]


def growing_mkv(big: int = 3000) -> bytes:
    """An MJPEG Matroska file declared (and starting) 256x256 whose third frame is big x big: headers alone cannot
    tell, so the decoder itself must refuse to allocate it."""
    from fractions import Fraction

    import av
    import numpy as np

    def first_packet(size):
        encoder = av.CodecContext.create("mjpeg", "w")
        encoder.width = encoder.height = size
        encoder.pix_fmt, encoder.time_base = "yuvj420p", Fraction(1, 5)
        frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 90, np.uint8), format="rgb24")
        return bytes(encoder.encode(frame.reformat(format="yuvj420p"))[0])

    small, large = first_packet(256), first_packet(big)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        stream = container.add_stream("mjpeg", rate=5)
        stream.width = stream.height = 256
        stream.pix_fmt = "yuvj420p"
        for idx, data in enumerate([small, small, large, small]):
            packet = av.Packet(data)
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, idx, idx, Fraction(1, 5)
            container.mux(packet)
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes], compress: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def understating_zip(members: dict[str, bytes], claimed: int) -> bytes:
    """A zip whose end record claims fewer entries than its directory holds."""
    data = bytearray(zip_bytes(members))
    end = data.rindex(b"PK\x05\x06")
    data[end + 8:end + 12] = struct.pack("<HH", claimed, claimed)
    return bytes(data)


def zip_bomb(total: int, name: str = "f0.png") -> bytes:
    """One deflated member of `total` zero bytes (~1000x smaller on disk), named like a frame or a mask."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(name, "w", force_zip64=True) as member:
            block = b"\0" * (1024 * 1024)
            for _ in range(total // len(block)):
                member.write(block)
    return buffer.getvalue()
