"""Samples: the mock Xero server (real TLS on loopback) and the demo's scripted traffic.

Shipped inside the package as ``inspector.samples`` so `xero-inspector mock` and
`xero-inspector demo` work from any install.
"""
