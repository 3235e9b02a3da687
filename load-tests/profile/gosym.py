"""Names the functions of a stripped Go binary (nats-server) from its .gopclntab, for
`perf report --sort sym` lines that show only addresses.

    perf report ... --comm nats-server --sort sym | python3 gosym.py /usr/sbin/nats-server

Reads "<percent>% [.] 0x<offset>" lines and prints the percentages summed by function.
"""

import bisect
import re
import struct
import subprocess
import sys


def functions(path):
    data = open(path, "rb").read()
    for line in subprocess.check_output(["readelf", "-SW", path], text=True).splitlines():
        if ".gopclntab" in line:
            fields = line.split("]")[1].split()
            off, size = int(fields[3], 16), int(fields[4], 16)
            break
    else:
        sys.exit(f"{path}: no .gopclntab section")
    tab = data[off : off + size]
    # Go 1.18+ layout: magic, pad, minLC, ptrSize, then 8 words.
    nfunc, _, text, names, _, _, _, pcln = struct.unpack_from("<8Q", tab, 8)
    out = []
    for i in range(nfunc):
        entry, funcoff = struct.unpack_from("<II", tab, pcln + i * 8)
        nameoff = struct.unpack_from("<i", tab, pcln + funcoff + 4)[0]
        start = names + nameoff
        out.append((text + entry, tab[start : tab.index(b"\0", start)].decode()))
    out.sort()
    return out


def main():
    funcs = functions(sys.argv[1])
    starts = [f[0] for f in funcs]
    base = 0x400000  # where the linker puts a non-PIE Go binary
    totals = {}
    for line in sys.stdin:
        m = re.match(r"\s*([\d.]+)%.*\[\.\]\s+0x([0-9a-f]+)", line)
        if not m:
            continue
        i = bisect.bisect_right(starts, int(m.group(2), 16) + base) - 1
        name = funcs[i][1] if i >= 0 else "?"
        totals[name] = totals.get(name, 0.0) + float(m.group(1))
    for name, pct in sorted(totals.items(), key=lambda kv: -kv[1])[:10]:
        print(f"{pct:6.2f}%  {name}")


if __name__ == "__main__":
    main()
