"""The daily summary: scan every kubeconfig on every cluster, reconcile, report, notify.

timer event -> options -> scan (streaming classification) -> reconciliation (the
event path's plan and executor) -> Report -> Markdown / JSON / HTML -> channels.
"""
