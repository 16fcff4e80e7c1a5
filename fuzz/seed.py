"""Seeds the fuzz corpora from real captures (../assets/corpus and ../assets/demo.pcap):
whole files for pcap_file, single frames for decode, response heads for head_scan, and
per-connection payload sequences in the
http_streams chunk format (header byte: bit 7 = from server, bit 6 = never captured, bits 0-5 = length).

Usage: python3 seed.py   (writes corpus/<target>/, which git ignores)
"""

import glob
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURES = sorted(glob.glob(os.path.join(HERE, "../assets/corpus/*.pcap"))) + [os.path.join(HERE, "../assets/demo.pcap")]


def frames(path):
    data = open(path, "rb").read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    pos = 24
    while pos + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[pos:pos + 16])
        yield data[pos + 16:pos + 16 + incl]
        pos += 16 + incl


def tcp_payload(frame):
    """(flow key, from_server, payload) for Ethernet/IPv4/TCP frames, else None."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    if ip[9] != 6 or len(ip) < ihl + 20:
        return None
    tcp = ip[ihl:]
    sport, dport = struct.unpack("!HH", tcp[:4])
    off = (tcp[12] >> 4) * 4
    payload = ip[ihl + off:total]
    from_server = sport in (80, 8080)
    client = (ip[12:16], sport) if not from_server else (ip[16:20], dport)
    return client, from_server, bytes(payload)


def write(target, blob):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(blob).hexdigest()), "wb") as f:
        f.write(blob)


def main():
    for path in CAPTURES:
        write("pcap_file", open(path, "rb").read()[:200_000])
        streams = {}
        for i, fr in enumerate(frames(path)):
            if i < 200:
                write("decode", b"\x00" + fr)
            p = tcp_payload(fr)
            if p and p[2].startswith(b"HTTP/1."):
                write("head_scan", p[2][:600])
            if p and p[2]:
                key, from_server, payload = p
                s = streams.setdefault(key, bytearray())
                if len(s) < 20_000:
                    for j in range(0, len(payload), 63):
                        piece = payload[j:j + 63]
                        s += bytes([(0x80 if from_server else 0) | len(piece)]) + piece
        for s in list(streams.values())[:20]:
            write("http_streams", bytes(s))
    for t in ("decode", "reassembly", "http_streams", "pcap_file", "head_scan"):
        d = os.path.join(HERE, "corpus", t)
        print(t, len(os.listdir(d)) if os.path.isdir(d) else 0)


if __name__ == "__main__":
    main()
