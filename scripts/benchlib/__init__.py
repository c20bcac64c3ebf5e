"""Benchmark kubeconfig-guard against the fake ACK over real HTTP on loopback, two ways.

Run it with the Python that has kubeconfig-guard[dev] installed (or pass ``--python``), as root
for the deployed view's CPU quota:

    .venv/bin/python scripts/bench                    # everything (about 12 minutes)
    .venv/bin/python scripts/bench --quick            # smaller worlds, a smoke run (~1.5 min)
    .venv/bin/python scripts/bench --only fc --only cold --only burst --json /tmp/bench.json
    .venv/bin/python scripts/bench --only fc --fc-cpu 0.35,0.5,1 --fc-python .venv-3.10/bin/python


The package (scripts/benchlib; ``scripts/bench`` is its launcher; ruff and mypy --strict check it)
  cli.py        options, the worlds, the run, the figures (--json: results.BenchResults)
  options.py    BenchOptions          results.py   the figures, typed (dataclasses)
  twocores.py   small/medium/large/rate-limited: workers, variants, lower bounds
  deployed.py   fc/burst/cold: Function Compute instances under the template's vCPU
  fleet.py      fleet: the users' scale (1,000 clusters) on a cold instance: time, peak and kept memory
  report.py     the tables and the targets
  listing.py    calls and rounds of one listing, asked of the client
  fakeproc.py   the fake ACK process (world recipe, command loop) and its parent-side client
  fcsim.py      template.yml's functions, the cgroup CPU quota, instances, deletion events
  children.py   the children's environment, bytecode trees, measured runs
  worker.py     one measured workload (a child)       fc.py  one instance (a child)
  chaos.py      the chaos mode (``scripts/bench chaos``)
  clients.py    the HTTP clients compared (``scripts/bench clients``; clientsworker.py: one run)
  organization.py  organization mode at scale (``scripts/bench organization``; orgfake.py: the fake
                   Resource Directory's process)

Two views
  * The deployed view (workloads ``fc``, ``cold``, ``burst``, ``fleet``; what a user gets): the event
    function run the way Function Compute 3.0 runs a standard runtime. template.yml is read with
    PyYAML (``${vars.x}`` and ``${env('NAME', 'default')}`` resolved like Serverless Devs): the
    event function's ``handler``, ``cpu``, ``memorySize``, ``timeout``, environment and
    ``concurrencyConfig.reservedConcurrency``. Each instance is a fresh process
    (benchlib/fc.py) that imports the handler's module, then calls the handler with the
    event bytes and the runtime's context (python3.10's: ``credentials``, ``function.timeout``,
    ``account_id``, ``region``; on Python 3.12 python3.12's: no ``credentials``, the role's token
    in the environment), one invocation at a time. It runs under a cgroup v1 CPU quota of
    the template's vCPU (``/sys/fs/cgroup/cpu/kcguard-bench-N``: ``cpu.cfs_period_us`` 100000,
    ``cpu.cfs_quota_us`` cpu x 100000; the child's pid is written to ``cgroup.procs`` before it
    starts; the group is removed afterwards). A busy loop checks the quota (CPU-s per s). When the
    group cannot be made (not root, no cgroup v1), every figure says "NOT enforced".
    The official SDK's sequential loop runs under the same quota in the same run.
  * The two whole cores view (``small``, ``medium``, ``large``, ``rate-limited``): the handler
    inside one process with the machine's cores, the measured call only.

Bytecode: the children read compiled modules from a PYTHONPYCACHEPREFIX tree filled at the start
(a package that ships .pyc). ``cold`` also runs without them (only the standard library's: what a
package without .pyc costs on Function Compute, whose code directory is read-only).

How it measures
  * The fake ACK (``kubeconfig_guard.fake``: FakeAck + FakeAckServer, a real threaded HTTP/1.1
    server) runs in its own process (benchlib/fakeproc.py) over a world generated from
    ``--seed``, with ``--latency-ms`` (default 50) added to every request. Before every run the
    world is restored and the counters zeroed; after it the server reports requests per
    operation (``backend.calls``, throttled ones included) and injected faults.
  * Every measured workload runs in a fresh child process (benchlib/worker.py, or fc.py
    for an instance); its peak RSS is the child's ``ru_maxrss`` from ``os.wait4`` (what
    ``/usr/bin/time -v`` shows), its CPU the child's user+system time. Two-cores wall time is the
    measured call only; deployed-view cold wall time is from process start to the result.
  * Variants: ``kcguard`` (the project, default settings: KCGUARD_MAX_CONCURRENCY=32,
    KCGUARD_MAX_RPS=500), ``kcguard-c1`` (KCGUARD_MAX_CONCURRENCY=1, sequential), ``sdk`` (a
    plain sequential loop over the official alibabacloud-cs20151215 SDK doing the same
    listing and cleaning; clusters that are not running are skipped by both).
  * Lower bound of a two-cores run, for the settings it used: the larger of
      (a) the latency critical path: max(calls x latency / concurrency, calls / max_rps,
          dependency depth x latency), with the run's own call count; the depth is the
          DescribeClustersV1 pages of a region (sequential) + the listing rounds of a cluster + one
          round of Clean calls, the calls and rounds of a listing asked of the client itself
          (benchlib/listing.py: the real AckClient against a one-cluster fake);
      (b) the CPU floor: the same run with zero injected latency (measured).
    ``x bound`` is wall / lower bound. ``speedup`` is the variant's wall / kcguard's wall.

Workloads (``--only`` any of them; default all)
  small         1 region, 10 clusters x 30 kubeconfigs; one DeleteUser event (enforce).
  medium        3 regions x 100 clusters x 120 kubeconfigs, the deleted user on 40 clusters;
                one DeleteUser event for that user (enforce).
  fc            the medium deletion on a Function Compute instance at each ``--fc-cpu``: cold
                (process start -> import -> result) and warm (the next event on that instance
                right after: a second deleted user), beside the SDK loop as a fresh process
                under the same quota (start to exit, SDK import included).
  large         1 region, 1,000 clusters x 100 kubeconfigs (100k); the daily summary
                (handle_summary: scan, classify, reconcile, render; enforce). Peak RSS vs 128 MB.
  rate-limited  the medium world, the fake throttling every operation at --rate-limit
                requests/s (token bucket per operation, burst --rate-burst) that the client is
                not told: the summary in dry-run (a full scan, no writes) and the medium event
                (enforce). Bound: calls the work needs (throttled ones excluded) / rate; the
                served and throttled requests per second are printed.
  burst         1 region, 60 clusters x 120 kubeconfigs, 50 RAM users marked deleted; the 50
                DeleteUser events (dated now, all at once) queued onto ``--reserved`` instances
                (reservedConcurrency; default 1, 2 and the template's), each a fresh process at
                the first ``--fc-cpu`` taking one event at a time, first in first out; vs one
                event for an unknown user on a cold instance (one full scan): listing calls,
                time until the last event is done, pairs revoked.
  fleet         5 regions x 200 clusters x 120 kubeconfigs, the deleted user on 100 clusters; one
                DeleteUser event on a cold instance at each ``--fc-cpu`` (the blast-radius limit
                raised to let its 100 revocations through): wall, CPU, calls vs the bound, peak RSS
                vs 128 MB, and the memory kept after it per 100,000 kubeconfigs listed (<= 40 MB).
  cold          process start -> import the handler -> first small event on a fresh instance
                at each ``--fc-cpu`` (median of --repeat), with and without shipped bytecode,
                beside ``python -c pass`` and ``import alibabacloud_cs20151215.client``.

Trying a change without editing the package: ``--child-env KCGUARD_MAX_RPS=600`` (any setting;
the bounds follow KCGUARD_MAX_CONCURRENCY / KCGUARD_MAX_RPS) or ``--child-env PYTHONPATH=DIR``;
other sizes with ``--fc-cpu`` or the template's own variables (e.g. KCGUARD_EVENT_RESERVED_CONCURRENCY).

Targets (benchmarks, not tests; reported as met/missed). Deployed view, at the template's vCPU:
medium event cold >= 15x faster than the SDK loop; client CPU <= 1.0 ms per API call (the SDK's
is printed beside it) and <= 0.40 ms per additional call (issue 19: the medium event's cold CPU
less the first small event's, per call more); cold start <= 400 ms (issue 19); burst <= 2x the listing calls of one scan and all
50 done within 60 s, every pair revoked once. Two cores: medium event >= 15x faster than the
SDK loop and within 1.5x of its lower bound; rate-limited within 1.25x of calls/rate with < 5%
throttled; large summary peak RSS <= 128 MB and within 1.5x of its lower bound.
"""
