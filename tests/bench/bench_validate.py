"""Validation cost per body: parse + schema check + findings, against parsing alone (the baseline),
for bodies of about 2 KB and 200 KB (and 5 MB with --big): an XPM detailed client list (the
answer to GET client.api/list?detailed=true) and Accounting Invoices PUT bodies (a stricter schema).

    python tests/bench/bench_validate.py [--repeat 200] [--big]

Medians of --repeat runs, in one process, so both figures see the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from inspector.ingest import xmlsafe
from inspector.ingest.catalog import Catalog
from inspector.ingest.validate import Validator

LINE = (
    "<LineItem><Description>Consulting, {n} hours</Description><Quantity>{n}</Quantity>"
    "<UnitAmount>120.00</UnitAmount><AccountCode>200</AccountCode><TaxType>OUTPUT2</TaxType></LineItem>"
)
INVOICE = (
    "<Invoice><Type>ACCREC</Type><Contact><Name>Customer {i}</Name></Contact><Date>2024-08-01</Date>"
    "<DueDate>2024-08-31</DueDate><Reference>REF-{i}</Reference><LineAmountTypes>Exclusive</LineAmountTypes>"
    "<LineItems>{lines}</LineItems></Invoice>"
)


CLIENT = (
    "<Client><ID>{i}</ID><UUID>2f1c1a3e-0b8e-4f7e-9d6a-{i:012d}</UUID><Name>Client {i} Holdings Ltd</Name>"
    "<Email>accounts{i}@client.example</Email><Address>Level {n}, 12 Queen Street</Address><City>Auckland</City>"
    "<Region>Auckland</Region><PostCode>1010</PostCode><Country>New Zealand</Country>"
    "<Phone>09 555 {n:04d}</Phone><Website>https://client{i}.example</Website>"
    "<ExportCode>C{i}</ExportCode><IsProspect>No</IsProspect><IsArchived>No</IsArchived><IsDeleted>No</IsDeleted>"
    "<AccountManager><ID>859230</ID><Name>Jo Bloggs</Name></AccountManager>"
    "<Type><Name>Company</Name><CostMarkup>0</CostMarkup><PaymentTerm>DayOfMonth</PaymentTerm></Type>"
    "<Contacts><Contact><ID>{i}1</ID><IsPrimary>Yes</IsPrimary><Name>Ana Ngata</Name>"
    "<Mobile>021 555 {n:04d}</Mobile><Email>ana@client{i}.example</Email><Position>Director</Position></Contact>"
    "</Contacts><BillingClient><ID>{i}</ID><Name>Client {i} Holdings Ltd</Name></BillingClient>"
    "<Groups><Group><ID>7</ID><Name>Auckland clients</Name></Group></Groups></Client>"
)


def client_list(target_bytes: int) -> bytes:
    """An XPM detailed client list answer of about target_bytes (at least one client)."""
    head, tail = '<Response api-method="List"><Status>OK</Status><Clients>', "</Clients></Response>"
    clients: list[str] = []
    size = len(head) + len(tail)
    while not clients or size < target_bytes:
        client = CLIENT.format(i=24097642 + len(clients), n=len(clients) % 10_000)
        clients.append(client)
        size += len(client)
    return (head + "".join(clients) + tail).encode()


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
    bodies = (
        ("XPM detailed client list", "GET", "/practicemanager/3.0/client.api/list", "response", client_list),
        ("Accounting PUT Invoices", "PUT", "/api.xro/2.0/Invoices", "request", invoices),
    )
    validator = Validator()
    sizes = [("2 KB", 2_000), ("200 KB", 200_000)] + ([("5 MB", 5_000_000)] if args.big else [])
    print(f"validation cost per body, median of {args.repeat} runs (after a warm-up)")
    for name, method, path, side, make in bodies:
        found = catalog.classify(method, "api.xero.com", path)
        schema = found.response_schema if side == "response" else found.request_schema
        print(f"  {name} ({side} schema {schema.label if schema else None})")
        for label, size in sizes:
            body = make(size)
            repeat = max(3, args.repeat if size < 1_000_000 else args.repeat // 20)
            checked = validator.check(body, schema, side)  # warm-up: compiles the schema once
            assert not checked.findings, checked.findings
            parse = median_us(lambda body=body: xmlsafe.parse(body), repeat)
            full = median_us(lambda body=body, schema=schema, side=side: validator.check(body, schema, side), repeat)
            print(
                f"    {label:<7} {len(body):>9} bytes   parse {parse:10.0f} us   parse+validate {full:10.0f} us   "
                f"validation alone {full - parse:10.0f} us ({(full - parse) / len(body) * 1000:.1f} us/KB)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
