"""kubeconfig-guard: revoke ACK kubeconfigs of deleted or locked RAM principals.

Data flows one way: event bytes -> parsed event -> principal -> plan (pure) ->
executor (API calls) -> result -> log / report / notify.
"""

__version__ = "0.1.0"
