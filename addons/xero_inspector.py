"""mitmproxy script: record Xero traffic with mitmproxy's own tools.

    mitmdump -s addons/xero_inspector.py --set inspector_db=flows.db
    mitmproxy -s addons/xero_inspector.py      mitmweb -s addons/xero_inspector.py

Options: inspector_db, inspector_redirect, inspector_hosts, inspector_catalog,
inspector_keep_secrets, inspector_only_xero, inspector_fault, inspector_faults_file,
inspector_break, inspector_break_timeout (see `mitmdump --options`).
This file only wires the addons; everything lives in the `inspector` package.
"""

try:
    from inspector.proxy.run import addons as _addons
    from inspector.proxy.xero_scope import XeroScope
except ImportError as e:  # mitmdump from another Python than the one xero-inspector is in
    raise ImportError(
        f"{e}: install xero-inspector into the Python environment that runs mitmdump "
        "(pip install xero-inspector, or pip install -e . in its checkout)"
    ) from e

addons = _addons(XeroScope())  # the order matters: see inspector/proxy/run.py
