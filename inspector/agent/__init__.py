"""The recording for a coding agent: an MCP server whose tools are thin calls into the library
the CLI and the browser use (``tools``), and its wiring to the official MCP SDK (``server``)."""
