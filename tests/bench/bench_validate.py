"""Validation cost per body: parse + schema check + findings, against parsing alone (the baseline),
for Accounting Invoices PUT bodies of about 2 KB and 200 KB (and 5 MB with --big).

    python tests/bench/bench_validate.py [--repeat 200] [--big]

Medians of --repeat runs, in one process, so both figures see the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from inspector import xmlsafe
from inspector.catalog import Catalog
from inspector.validate import Validator

LINE = (
    "<LineItem><Description>Consulting, {n} hours</Description><Quantity>{n}</Quantity>"
    "<UnitAmount>120.00</UnitAmount><AccountCode>200</AccountCode><TaxType>OUTPUT2</TaxType></LineItem>"
)
INVOICE = (
    "<Invoice><Type>ACCREC</Type><Contact><Name>Customer {i}</Name></Contact><Date>2024-08-01</Date>"
    "<DueDate>2024-08-31</DueDate><Reference>REF-{i}</Reference><LineAmountTypes>Exclusive</LineAmountTypes>"
    "<LineItems>{lines}</LineItems></Invoice>"
)


def invoices(target_bytes: int) -> bytes:
    """Invoices of five lines each, the last one cut short, until the body is target_bytes long."""
    parts: list[str] = []
    size = len("<Invoices></Invoices>")
    i = 0
    while size < target_bytes:
        lines: list[str] = []
        empty = len(INVOICE.format(i=i, lines=""))
        while len(lines) < 5 and size + empty + sum(map(len, lines)) < target_bytes:
            lines.append(LINE.format(n=len(lines) + 1))
        invoice = INVOICE.format(i=i, lines="".join(lines or [LINE.format(n=1)]))
        parts.append(invoice)
        size += len(invoice)
        i += 1
    return f"<Invoices>{''.join(parts)}</Invoices>".encode()


def median_us(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--big", action="store_true", help="also a 5 MB body")
    args = ap.parse_args()
    catalog = Catalog.load()
    schema = catalog.classify("PUT", "api.xero.com", "/api.xro/2.0/Invoices").request_schema
    validator = Validator()
    sizes = [("2 KB", 2_000), ("200 KB", 200_000)] + ([("5 MB", 5_000_000)] if args.big else [])
    print(f"validation cost: PUT Invoices bodies, median of {args.repeat} runs (after a warm-up)")
    for label, size in sizes:
        body = invoices(size)
        repeat = max(3, args.repeat if size < 1_000_000 else args.repeat // 20)
        checked = validator.check(body, schema, "request")  # warm-up: compiles the schema once
        assert not checked.findings, checked.findings
        parse = median_us(lambda body=body: xmlsafe.parse(body), repeat)
        full = median_us(lambda body=body: validator.check(body, schema, "request"), repeat)
        print(
            f"  {label:<7} {len(body):>9} bytes   parse {parse:10.0f} us   parse+validate {full:10.0f} us   "
            f"validation alone {full - parse:10.0f} us ({(full - parse) / len(body) * 1000:.1f} us/KB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
