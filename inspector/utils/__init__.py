"""Helpers every layer may use: text made safe for a terminal, files written 0600 by rename,
tracebacks logged once per kind. They import nothing else from the project."""
