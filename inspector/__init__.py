"""xero-inspector: a debugging proxy and request inspector for Xero's XML APIs."""

__version__ = "0.1.0"
