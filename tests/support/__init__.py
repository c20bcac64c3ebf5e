"""The tests' shared builders (imported as ``support``: ``tests/`` is on ``sys.path`` under pytest).

* ``support.worlds``: paths, the test account, fake-ACK world records (``kc``, ``cluster``,
  ``world``), typed kubeconfig states (``kubeconfig_state``) and ``settings``;
* ``support.events``: EventBridge events built from the samples in ``events/``;
* ``support.harness``: the fake ACK behind the real client, in-process or over real HTTP, and
  ``kcguard fake serve`` in a child process;
* ``support.receivers``: a loopback HTTP receiver (a chat robot, an OSS bucket);
* ``support.reports``: realistic daily-summary reports;
* ``support.resilience``: invocation drivers and the invariants of the resilience suites;
* ``support.wire``: one ``httpwire`` connection fed by hand (the parser's fuzz and size tests).
"""
