#!/usr/bin/env python3
"""Renders `coldchain bench --json` reports as Markdown tables.

    python3 scripts/bench-table.py docs/bench/w1-mdbx.json [more.json ...]
"""
import json
import sys

for path in sys.argv[1:]:
    with open(path) as f:
        r = json.load(f)
    m = r["machine"]
    print(f"**{r['store']}**, {r['blocks']} blocks x {r['txs_per_block']} txs, "
          f"{m.get('cores')} cores, load {m.get('loadavg')}, {m.get('profile')} build")
    if r.get("bytes_per_block"):
        print(f"- bytes on disk per block: {r['bytes_per_block'] / 1024:.1f} KiB")
    print()
    print("| op | samples | median ms | p99 ms | rate | extra |")
    print("|---|---:|---:|---:|---:|---|")
    for o in r["results"]:
        rate = f"{o['rate']:,.0f} {o['unit']}" if o.get("rate") else ""
        extra = ", ".join(
            f"{k} {int(v):,}" if float(v).is_integer() else f"{k} {v:.3f}"
            for k, v in o["extra"].items()
        )
        print(f"| {o['op']} | {o['samples']} | {o['median_ms']:.3f} | {o['p99_ms']:.3f} | {rate} | {extra} |")
    print()
