"""What the command line does beyond recording: replay, import and export (HAR, curl, mitmproxy
flows), diff, report, revalidate, validate files, migrate, the demo. Imports from proxy, store,
ingest and utils; never from the browser."""
