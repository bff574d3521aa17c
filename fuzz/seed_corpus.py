#!/usr/bin/env python3
"""Fills fuzz/corpus/<target>/ with seeds cut from the binlog fixtures.

    python3 fuzz/seed_corpus.py [FIXTURE_DIR]   (default: ../shared/binlogs
                                                 beside the repository)

decode_event: one seed per event of every fixture file: type byte + body
(header removed; the trailing CRC32 removed when the file's
Format_description announces it, kept for the Format_description itself,
as the reader does).
read_file: per file, the raw file (flags 1), the events after its
Format_description behind the synthetic one (flags 0), and the raw file
split in two at its middle (flags 3).

The corpus directories are not committed (.gitignore); run this before
fuzzing.
"""
import hashlib
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = b"\xfebin"


def checksum_alg(fde_event):
    """CRC32 (1), off (0), or None for servers that predate checksums."""
    version = fde_event[19 + 2 : 19 + 52].split(b"\0")[0].decode("latin1")
    nums = [int(n) for n in re.findall(r"\d+", version)[:3]] + [0, 0, 0]
    v = tuple(nums[:3])
    aware = v >= (5, 3, 0) if "MariaDB" in version else v >= (5, 6, 1)
    return fde_event[-5] if aware else None


def events(data):
    pos = 4
    while pos + 19 <= len(data):
        size = struct.unpack_from("<I", data, pos + 9)[0]
        if size < 19 or pos + size > len(data):
            return
        yield data[pos : pos + size]
        pos += size


def write(target, seed):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(seed).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(seed)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "binlogs")
    n_files = n_events = 0
    for root, _, names in os.walk(src):
        for name in sorted(names):
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()
            if not data.startswith(MAGIC):
                continue
            n_files += 1
            evs = list(events(data))
            crc = False
            if evs and evs[0][4] == 15:
                crc = checksum_alg(evs[0]) == 1
            for i, ev in enumerate(evs):
                body = ev[19:]
                if crc and not (i == 0 and ev[4] == 15) and len(body) >= 4:
                    body = body[:-4]
                write("decode_event", bytes([ev[4]]) + body)
                n_events += 1
            write("read_file", b"\x01\x00\x00" + data)
            half = struct.pack("<H", (len(data) - 0) // 2 % 65536)
            write("read_file", b"\x03" + half + data)
            if evs and evs[0][4] == 15:
                write("read_file", b"\x00\x00\x00" + b"".join(evs[1:]))
    print(f"{n_files} files, {n_events} events -> {os.path.join(HERE, 'corpus')}")


if __name__ == "__main__":
    main()
