"""What runs inside mitmproxy or beside it: the Xero scope and the recorder addon, the redirect,
the hand-over to the recorder process and that process's side, running mitmproxy, the CA, and
spawning the proxy for the demo and `up`. Imports from ingest, store and utils."""
