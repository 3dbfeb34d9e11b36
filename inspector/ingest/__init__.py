"""Pure: a FlowRecord in, typed rows and findings out.

Decoding and sniffing bodies, Xero's facts (tenant, token, limits, errors), the catalog, the
XSDs compiled and checked, the rules a schema cannot see, redaction. No SQLite, mitmproxy or
Textual here: the recorder process, import and replay all run the same pipeline.
"""
