"""The terminal browser: the Partner Console view of a recording, in Textual.

``model`` reads the store and knows nothing of Textual; the widgets render what it returns.
"""
