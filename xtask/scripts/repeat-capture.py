"""Writes K copies of a pcap (Ethernet, IPv4) one after another, each copy on its own addresses and
later in time: the second octet of every IPv4 address grows by the copy's number and timestamps
move past the previous copy's end. A capture K times as long with the same traffic, and no
connection of one copy mistaken for another's (plain concatenation would replay every connection
as retransmissions of the first copy). IPv4 header checksums are left as they were.
Usage: repeat-capture.py IN.pcap OUT.pcap K"""

import struct
import sys


def main():
    src, out, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = open(src, "rb").read()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        endian, scale = "<", 1000
    elif magic == b"\x4d\x3c\xb2\xa1":
        endian, scale = "<", 1
    else:
        sys.exit("little-endian pcap expected")
    rec = struct.Struct(endian + "IIII")
    records = []
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, orig = rec.unpack_from(data, pos)
        records.append((sec * 10**9 + frac * scale, pos + 16, incl, orig))
        pos += 16 + incl
    span = records[-1][0] - records[0][0] + 10**9
    with open(out, "wb") as f:
        f.write(data[:24])
        for copy in range(k):
            shift = copy * span
            for ts, at, incl, orig in records:
                frame = bytearray(data[at : at + incl])
                if len(frame) >= 34 and frame[12:14] == b"\x08\x00":
                    frame[27] = (frame[27] + copy) & 0xFF
                    frame[31] = (frame[31] + copy) & 0xFF
                t = ts + shift
                f.write(rec.pack(t // 10**9, (t % 10**9) // scale, incl, orig))
                f.write(frame)


if __name__ == "__main__":
    main()
