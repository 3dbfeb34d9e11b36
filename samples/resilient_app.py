"""A small Practice Manager integration, for trying `xero-inspector chaos` on: it signs in, reads
the current jobs a few times and adds a job, handling what Xero throws at it the way Xero asks
(wait out Retry-After, sign in again on a 401, back off on a 503, look at its connections after a
403, never resend a request Xero rejected). With --naive it does none of that: the app every integration starts as.

It knows nothing of xero-inspector: the proxy and its CA come from the environment, as for any
app (HTTPS_PROXY, SSL_CERT_FILE), and the client's id and secret from XERO_CLIENT_ID and
XERO_CLIENT_SECRET (the mock's, by default).

    python -m inspector.samples.resilient_app [--naive] [--reads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import httpx

from .mock_xero import TENANTS
from .mock_xero.auth import MockConfig

XPM = "https://api.xero.com/practicemanager/3.0"
TOKEN_URL = "https://identity.xero.com/connect/token"
JOB = (
    "<Job><Name>Year-end accounts</Name><ClientID>24097642</ClientID><StartDate>20240701</StartDate>"
    "<DueDate>20240930</DueDate></Job>"
)
ATTEMPTS = 4


class App:
    def __init__(self, naive: bool) -> None:
        self.naive = naive
        self.http = httpx.Client(timeout=30)  # trust_env: HTTPS_PROXY and SSL_CERT_FILE, as any app
        self.token = ""

    def sign_in(self) -> None:
        config = MockConfig()
        auth = (
            os.environ.get("XERO_CLIENT_ID", config.client_id),
            os.environ.get("XERO_CLIENT_SECRET", config.client_secret),
        )
        resp = self.http.post(TOKEN_URL, data={"grant_type": "client_credentials"}, auth=auth)
        resp.raise_for_status()
        self.token = resp.json()["access_token"]

    def call(self, method: str, path: str, body: str | None = None) -> httpx.Response | None:
        for attempt in range(ATTEMPTS):
            headers = {"Authorization": f"Bearer {self.token}", "xero-tenant-id": TENANTS[0].id}
            try:
                resp = self.http.request(method, f"{XPM}/{path}", headers=headers, content=body)
            except httpx.TransportError as e:  # the connection dropped: try again, a little later
                print(f"{method} {path}: {type(e).__name__}", flush=True)
                time.sleep(0 if self.naive else 0.5 * (attempt + 1))
                continue
            print(f"{method} {path}: {resp.status_code}", flush=True)
            if resp.status_code == 429:
                time.sleep(0 if self.naive else float(resp.headers.get("Retry-After", "60")))
            elif resp.status_code == 401:
                if not self.naive:
                    self.sign_in()
            elif resp.status_code == 403:
                if not self.naive:  # is the organisation still connected? (here it is: go on)
                    self.http.get("https://api.xero.com/connections", headers={"Authorization": f"Bearer {self.token}"})
                return resp
            elif resp.status_code in (502, 503, 504):
                time.sleep(0 if self.naive else 0.5 * (attempt + 1))
            elif b"<Status>ERROR</Status>" in resp.content:
                if self.naive:
                    continue  # as if trying again could change Xero's mind
                return resp
            else:
                return resp
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--naive", action="store_true", help="Handle nothing: retry at once, with the same token.")
    ap.add_argument("--reads", type=int, default=3, help="How many times to read the current jobs.")
    args = ap.parse_args(argv)
    app = App(args.naive)
    app.sign_in()
    for _ in range(args.reads):
        app.call("GET", "job.api/current")
    app.call("POST", "job.api/add", JOB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
