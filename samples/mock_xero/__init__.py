"""A Xero on your laptop: a stateful mock of XPM 3.0, the Customer API 1.0 and Accounting 2.0
over real TLS on loopback, with Xero's envelopes, error shapes, tokens and rate limits."""

from .app import DEFAULT_SCOPES, Exchange, MockApp
from .auth import TENANTS, MockConfig, Tenant
from .server import MockXero

__all__ = ["DEFAULT_SCOPES", "TENANTS", "Exchange", "MockApp", "MockConfig", "MockXero", "Tenant"]
