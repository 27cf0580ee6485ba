"""Throughput of each operator on one core over 1,000,000 values, next to the bare primitive it wraps.

Run: .venv/bin/python benchmarks/bench_operators.py [--n 1000000] [--only pseudonymize,mask] [--repeat 3]
Values are all distinct (the worst case: no deduplication help) unless the column is naturally
low-cardinality (dates, numbers); "pseudonymize text x100" repeats each of n/100 values 100 times.
Pin to one core with `taskset -c 0` for stable numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hmac
import os
import secrets
import time

import numpy as np
import pandas as pd

from anonymizers import OperatorContext, build_operator


def timed_pair(op, prim, repeat: int) -> tuple[float, float, float, float]:
    """Best wall and CPU seconds of the operator and of its primitive, run alternately.

    Alternating puts both under the same background load on a shared machine, so their ratio stays meaningful
    when the absolute numbers do not.
    """
    best = [float("inf")] * 4
    for _ in range(repeat):
        for slot, fn in ((0, op), (2, prim)):
            wall, cpu = time.perf_counter(), time.thread_time()
            fn()
            best[slot] = min(best[slot], time.perf_counter() - wall)
            best[slot + 1] = min(best[slot + 1], time.thread_time() - cpu)
    return best[0], best[1], best[2], best[3]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--only", default="")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many alternating runs")
    args = parser.parse_args()
    n = args.n
    key = secrets.token_bytes(32)
    ctx = OperatorContext(key=key, key_id="k2026")
    rng = np.random.default_rng(7)

    emails = pd.Series([f"user{i}@mail{i % 97}.example.com" for i in range(n)], dtype="str")
    phones = pd.Series([f"+49 170 {i:07d}" for i in range(n)], dtype="str")
    ips = pd.Series([f"{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}.{i % 251}" for i in range(n)], dtype="str")
    ints = pd.Series(rng.integers(0, 10**12, n))
    ages = pd.Series(rng.integers(0, 100, n))
    stamps = pd.Series(pd.to_datetime(rng.integers(1.5e9, 1.8e9, n), unit="s"))
    subjects = pd.Series(rng.integers(0, n // 10, n))
    repeated = pd.Series([f"user{i % max(n // 100, 1)}@mail.example.com" for i in range(n)], dtype="str")
    email_list, phone_list, ip_list, repeated_list = emails.tolist(), phones.tolist(), ips.tolist(), repeated.tolist()

    def rpartition_lower():
        return [v.rpartition("@")[2].lower() for v in email_list]

    cases = [
        # (label, spec, column, subjects, primitive label, primitive)
        ("keep", "keep", emails, None, "Series.copy", lambda: emails.copy()),
        ("redact", "redact", emails, None, "[None]*n", lambda: [None] * n),
        ("pseudonymize text", "pseudonymize", emails, None, "hmac.new().hexdigest() loop",
         lambda: [hmac.new(key, v.encode(), "sha256").hexdigest() for v in email_list]),
        ("pseudonymize text x100", "pseudonymize", repeated, None, "hmac.new().hexdigest() loop",
         lambda: [hmac.new(key, v.encode(), "sha256").hexdigest() for v in repeated_list]),
        ("pseudonymize integer", "pseudonymize", ints, None, "hmac.new().hexdigest() loop",
         lambda: [hmac.new(key, str(v).encode(), "sha256").hexdigest() for v in ints.tolist()]),
        ("mask", {"mask": {"keep_last": 2}}, phones, None, "slice+concat loop",
         lambda: ["*" * (len(v) - 2) + v[-2:] for v in phone_list]),
        ("fake", {"fake": "name"}, emails, None, "hmac.digest loop",
         lambda: [hmac.digest(key, v.encode(), "sha256") for v in email_list]),
        ("generalize_ip", "generalize_ip", ips, None, "ipaddress.ip_network loop",
         lambda: [str(__import__("ipaddress").ip_network(f"{v}/24", strict=False)) for v in ip_list]),
        ("generalize_date", {"generalize_date": "month"}, stamps, None, "Series.dt.floor('D')",
         lambda: stamps.dt.floor("D")),
        ("bucket", {"bucket": 10}, ages, None, "Series // 10 * 10", lambda: ages // 10 * 10),
        ("truncate", {"truncate": 3}, phones, None, "Series.str.slice",
         lambda: phones.str.slice(0, 3)),
        ("shift_date", {"shift_date": 30}, stamps, subjects, "Series + Timedelta",
         lambda: stamps + pd.Timedelta(days=1)),
        ("email_domain", "email_domain", emails, None, "rpartition+lower loop", rpartition_lower),
    ]
    only = {s for s in args.only.split(",") if s}
    print(f"n={n:,} values, best of {args.repeat}, python {os.sys.version.split()[0]}, pandas {pd.__version__}, "
          f"{os.cpu_count()} cores visible, pinned to {sorted(os.sched_getaffinity(0))}, date {dt.date.today()}")
    print("values/s from wall time; cpu/s from this thread's CPU time (what the process got of its core)")
    header = (f"{'operator':22} {'values/s':>12} {'primitive':30} {'values/s':>12} {'op/prim':>8} "
              f"{'op cpu/s':>12} {'prim cpu/s':>12}  load (1/5/15 min)")
    print(header)
    print("-" * len(header))
    for label, spec, column, subj, prim_label, prim in cases:
        if only and label.split()[0] not in only:
            continue
        operator = build_operator(spec, ctx)
        operator.apply(column.iloc[:1000], None if subj is None else subj.iloc[:1000])  # warm caches, pools
        t_op, c_op, t_prim, c_prim = timed_pair(lambda op=operator, c=column, s=subj: op.apply(c, s), prim,
                                                args.repeat)
        load = " ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"{label:22} {n / t_op:12,.0f} {prim_label:30} {n / t_prim:12,.0f} {t_prim / t_op:8.2f} "
              f"{n / c_op:12,.0f} {n / c_prim:12,.0f}  {load}")


if __name__ == "__main__":
    main()
