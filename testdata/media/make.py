"""Write the tiny media files the tests sniff and send: python3 testdata/media/make.py

Each is built here byte by byte with the standard library (no encoder is needed at this size),
so the committed files can be made again and checked: a 1x1 PNG, JPEG, GIF and WebP, a WAV of a
few samples of silence and an MP3 of one silent frame behind an ID3 tag.  Only the first bytes
matter to dmr_client (it sniffs the kind from them); the rest is kept valid so a real decoder
reads them too.
"""

import os
import struct
import wave
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def png() -> bytes:
    """1x1, 8-bit RGB, one red pixel."""
    def block(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + block(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + block(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + block(b"IEND", b""))


def jpeg() -> bytes:
    """1x1 baseline grayscale JPEG, mid grey: one 8x8 block whose only coded values are DC
    category 0 and end-of-block, each under a one-symbol Huffman table (code '0')."""
    def segment(marker: int, data: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(data) + 2) + data
    jfif = segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    quant = segment(0xDB, b"\x00" + b"\x01" * 64)
    frame = segment(0xC0, struct.pack(">BHHB", 8, 1, 1, 1) + b"\x01\x11\x00")
    one_symbol = bytes([1] + [0] * 15)
    tables = segment(0xC4, b"\x00" + one_symbol + b"\x00" + b"\x10" + one_symbol + b"\x00")
    scan = segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    return b"\xff\xd8" + jfif + quant + frame + tables + scan + b"\x3f" + b"\xff\xd9"   # '0' '0', padded with 1s


def gif() -> bytes:
    """1x1 GIF89a, two-colour table, LZW: clear, pixel 0, end."""
    return (b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\xff\xff\xff\x00\x00\x00"
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00" + b"\x3b")


def webp() -> bytes:
    """1x1 lossless WebP (VP8L): no transforms, no colour cache, five one-symbol prefix codes,
    so the pixel (opaque red) takes no bits."""
    bits = []

    def put(value: int, count: int) -> None:
        bits.extend((value >> i) & 1 for i in range(count))
    put(0, 14)   # width - 1
    put(0, 14)   # height - 1
    put(0, 1)    # alpha is not used
    put(0, 3)    # version 0
    put(0, 1)    # no transform
    put(0, 1)    # no colour cache
    put(0, 1)    # no meta prefix codes
    for symbol in (0, 255, 0, 255, 0):   # green, red, blue, alpha, distance
        put(1, 1)   # a simple code
        put(0, 1)   # of one symbol
        put(1, 1)   # written in 8 bits
        put(symbol, 8)
    bits.extend([0] * (-len(bits) % 8))
    data = b"\x2f" + bytes(sum(bit << i for i, bit in enumerate(bits[n:n + 8])) for n in range(0, len(bits), 8))
    chunk = b"VP8L" + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) % 2)
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def wav(path: str) -> None:
    """Eight samples of silence, 16-bit mono at 8 kHz."""
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8)


def mp3() -> bytes:
    """An ID3v2.4 tag (a title), then one silent MPEG-1 Layer III frame: 128 kbit/s, 44.1 kHz,
    mono, no CRC, 417 bytes, all side information zero (nothing to decode but silence)."""
    title = b"\x03dmr_client test"   # UTF-8
    frame_id = b"TIT2" + struct.pack(">I", len(title)) + b"\x00\x00" + title   # sizes under 128: synchsafe as is
    tag = b"ID3\x04\x00\x00" + struct.pack(">I", len(frame_id)) + frame_id
    header = b"\xff\xfb\x90\xc0"
    return tag + header + b"\x00" * (417 - len(header))


def main() -> None:
    for name, data in (("tiny.png", png()), ("tiny.jpg", jpeg()), ("tiny.gif", gif()), ("tiny.webp", webp()),
                       ("tiny.mp3", mp3())):
        with open(os.path.join(HERE, name), "wb") as out:
            out.write(data)
    wav(os.path.join(HERE, "tiny.wav"))


if __name__ == "__main__":
    main()
