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
mirror_packets: per file with a Format_description, the dump a primary
sends for it (a fake Rotate, then every event as an OK packet) in one
session, and in two sessions (the second resuming at the middle event with
a fake Rotate for the same file and a log_pos-0 Format_description), with
a heartbeat, an EOF and an ERR packet; plus the MariaDB 10.11 files below
64 KiB as one stream across rotations.
serve_packets: command sequences a replica, mariadb-binlog and a mirror
send (queries, COM_REGISTER_SLAVE, dumps by file:pos and by GTID), and a
few garbage logins.

The corpus directories are not committed (.gitignore); run this before
fuzzing.
"""
import hashlib
import os
import re
import struct
import sys
import zlib

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


ARTIFICIAL = 0x20
NAME = re.compile(r"^[^./][^/]*\.[0-9]+$")


def event(type_code, body, log_pos, flags, crc):
    size = 19 + len(body) + (4 if crc else 0)
    head = struct.pack("<IBIIIH", 0, type_code, 1, size, log_pos, flags)
    ev = head + body
    if crc:
        ev += struct.pack("<I", zlib.crc32(ev) & 0xFFFFFFFF)
    return ev


def fake_rotate(name, pos, crc):
    return event(4, struct.pack("<Q", pos) + name.encode(), 0, ARTIFICIAL, crc)


def heartbeat(name, log_pos, crc):
    return event(27, name.encode(), log_pos, ARTIFICIAL, crc)


def record(packet):
    return struct.pack("<H", len(packet)) + packet


def ok(ev):
    return record(b"\0" + ev)


SESSION_BREAK = struct.pack("<H", 0xFFFF)
EOF_PACKET = record(b"\xfe\0\0\x02\0")
ERR_PACKET = record(b"\xff\xd4\x04#HY000Could not find first log file name in binary log index file")


def mirror_seeds(name, evs, crc):
    """The dump of one file: whole, in two sessions, with extra packets."""
    flags = bytes([(1 | 2 | 4) if crc else 4])
    plain = bytes([1 if crc else 0])
    whole = ok(fake_rotate(name, 4, crc)) + b"".join(ok(e) for e in evs)
    seeds = [plain + whole, flags + whole]
    half = max(1, len(evs) // 2)
    resume = 4 + sum(len(e) for e in evs[:half])
    fde = bytearray(evs[0])
    fde[13:17] = b"\0\0\0\0"
    first = ok(fake_rotate(name, 4, crc)) + b"".join(ok(e) for e in evs[:half])
    second = ok(fake_rotate(name, resume, crc)) + ok(bytes(fde))
    second += ok(heartbeat(name, resume, crc)) + b"".join(ok(e) for e in evs[half:])
    seeds.append(plain + first + EOF_PACKET + SESSION_BREAK + second + ERR_PACKET)
    return seeds


def serve_seeds():
    """Seeds for serve_packets: mode byte, then length-prefixed commands."""
    def cmds(*cs):
        out = b""
        for c in cs:
            out += bytes([min(len(c), 255)]) + c[:255]
        return out

    def q(sql):
        return b"\x03" + sql

    def dump(file, pos, flags=0, sid=0):
        return b"\x12" + struct.pack("<IHI", pos, flags, sid) + file

    reg = b"\x15" + struct.pack("<I", 7) + b"\x00\x00\x00" + struct.pack("<HII", 0, 0, 0)
    seeds = [
        b"\x03" + cmds(q(b"SHOW BINARY LOGS"), q(b"SHOW MASTER STATUS"), dump(b"synth-bin.000001", 4)),
        b"\x03" + cmds(q(b"SELECT UNIX_TIMESTAMP()"), q(b"SHOW VARIABLES LIKE 'SERVER_ID'"),
                        q(b"SELECT @master_binlog_checksum"), reg, dump(b"synth-bin.000002", 4, 2, 9)),
        b"\x03" + cmds(q(b"SET @slave_connect_state='0-1-30', @slave_gtid_strict_mode=1"),
                        q(b"SELECT @@GLOBAL.gtid_domain_id, binlog_gtid_pos('synth-bin.000001', 4)"),
                        dump(b"", 4, 0, 5)),
        b"\x03" + cmds(q(b"SET @slave_connect_state=''"), dump(b"", 4, 1, 0)),
        b"\x01" + cmds(q(b"SELECT @@version, @@server_id, @@binlog_checksum, @@gtid_binlog_pos"),
                        q(b"SET NAMES utf8mb4; SELECT VERSION() AS v LIMIT 1"), b"\x0e", b"\x16abc", b"\x01"),
        b"\x00" + b"\x10\x00\x00\x01" + b"\xde\xad" * 8,
        b"\x00" + b"\xff\xff\xff\x01",
    ]
    for s in seeds:
        write("serve_packets", s)


def main():
    serve_seeds()
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
                if len(data) <= 65536:
                    mname = name if NAME.match(name) else "fuzz-bin.000001"
                    for seed in mirror_seeds(mname, evs, crc):
                        write("mirror_packets", seed)
    # MariaDB 10.11 files across rotations (000003 is too big for a seed).
    stream = b""
    for name in ["mariadb-bin.000001", "mariadb-bin.000002", "mariadb-bin.000004"]:
        path = os.path.join(src, "mariadb-10.11", name)
        if not os.path.exists(path):
            stream = b""
            break
        with open(path, "rb") as f:
            evs = list(events(f.read()))
        stream += ok(fake_rotate(name, 4, True)) + b"".join(ok(e) for e in evs)
    if stream:
        write("mirror_packets", b"\x01" + stream)
    print(f"{n_files} files, {n_events} events -> {os.path.join(HERE, 'corpus')}")


if __name__ == "__main__":
    main()
