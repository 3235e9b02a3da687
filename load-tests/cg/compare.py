"""Instructions per request of two callgrind dumps of one service (open and locked),
and the functions whose self cost differs most. Used by load-tests/cg-locks.sh.

  compare.py OPEN_DUMP OPEN_REQUESTS LOCKED_DUMP LOCKED_REQUESTS [TOP]
"""

import collections
import re
import sys


def self_costs(path):
    """Self cost (Ir) per function name in a callgrind output file."""
    names, costs = {}, collections.Counter()
    fn, after_call = None, False
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line or line[0] == "#":
            continue
        m = re.match(r"^(fn|cfn|fl|fi|fe|cfi|cfl|ob|cob)=\((\d+)\)(?: (.*))?$", line)
        if m:
            kind, idx, name = m.groups()
            key = ("fn" if kind in ("fn", "cfn") else "file", idx)
            if name:
                names[key] = name
            if kind == "fn":
                fn = names.get(key, idx)
            continue
        if line.startswith("calls="):
            after_call = True
            continue
        if line[0].isdigit() or line[0] in "+-*":
            parts = line.split()
            if after_call:  # the inclusive cost of a call, not this function's own
                after_call = False
                continue
            if len(parts) >= 2 and fn:
                costs[fn] += int(parts[1])
    return costs


def main():
    a, na, b, nb = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    top = int(sys.argv[5]) if len(sys.argv) > 5 else 12
    ca, cb = self_costs(a), self_costs(b)
    ta, tb = sum(ca.values()) / na, sum(cb.values()) / nb
    sha = cb.get("sha2::sha256::compress256", 0) / nb - ca.get("sha2::sha256::compress256", 0) / na
    print(f"  instructions per request: open {ta:,.0f}, locked {tb:,.0f} "
          f"(+{tb - ta:,.0f}, +{(tb - ta) / ta:.1%}); of which SHA-256 +{sha:,.0f} "
          f"(valgrind hides SHA extensions: in software here)")
    diff = {k: cb[k] / nb - ca[k] / na for k in set(ca) | set(cb)}
    for k, v in sorted(diff.items(), key=lambda x: -abs(x[1]))[:top]:
        print(f"  {v:+9,.0f}  {k[:110]}")


main()
