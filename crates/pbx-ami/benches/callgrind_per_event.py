#!/usr/bin/env python3
"""Instructions per event from a callgrind output file (docs/bench/ingest.md).

    callgrind_per_event.py CALLGRIND_OUT EVENTS [ROUNDS]

Prints the program total and, when the file is from the `ingest` bench, the inclusive cost
of its `ingest` (codec + translate + tracker) and `decode_only` functions, per event over
ROUNDS rounds (3, as the bench runs). Each figure is also given without the bulk copies,
memcpy calls of more than 4 KiB each (the bench's 64 KiB chunk copies, the client's batch
copies): glibc's large memcpy uses `rep movsb`, which callgrind counts once per byte.
"""
import collections
import re
import sys


def main():
    path, events = sys.argv[1], int(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    names = {}

    def name(tok):
        m = re.match(r"\((\d+)\)(?: (.*))?", tok.strip())
        if not m:
            return tok.strip()
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), tok.strip())

    total = 0
    fn = cfn = None
    pending = None
    inclusive = collections.Counter()  # self cost + calls made, per function
    bulk = collections.Counter()  # bulk memcpy calls made directly, per function
    for line in open(path):
        if line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
        elif line.startswith("fn="):
            fn = name(line[3:])
        elif line.startswith("cfn="):
            cfn = name(line[4:])
        elif line.startswith("calls="):
            pending = int(line[6:].split()[0])
        elif line[:1].isdigit() or line[:1] in "+-*":
            parts = line.split()
            if len(parts) < 2:
                continue
            cost = int(parts[1])
            inclusive[fn] += cost
            if pending is not None:
                if ("memcpy" in cfn or "memmove" in cfn) and cost > 4096 * pending:
                    bulk[fn] += cost
                    bulk["(all)"] += cost
                pending = None
    print(
        f"program: {total:,} instr = {total / events:,.0f}/event; "
        f"without bulk memcpy {(total - bulk['(all)']) / events:,.0f}/event"
    )
    for f in ("ingest::ingest", "ingest::decode_only"):
        if f in inclusive:
            per = inclusive[f] / rounds / events
            net = (inclusive[f] - bulk[f]) / rounds / events
            print(f"{f}: {per:,.0f}/event; without the chunk memcpy {net:,.0f}/event")


main()
