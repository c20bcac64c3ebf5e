"""Helpers of ``scripts/bench``: ``server.py`` (the fake ACK in its own process) and ``worker.py``
(one measured workload per fresh process). Both are run as scripts, by path."""
