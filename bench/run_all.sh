#!/usr/bin/env bash
# Every benchmark, one after another (never in parallel: they share the two cores), median of 3 runs each.
# Each script installs what it drives (wrk, nginx-light, etcd-server, prometheus-blackbox-exporter) and
# writes its figures to var/bench-results/<name>.json; docs/BENCHMARKS.md records them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
echo "=== machine"; nproc; uptime
echo "=== platform: full stack vs bare view";           $PY bench/platform_api.py --runs 3
echo "=== registry: sweep vs blackbox_exporter";         BENCH_RUNS=3 $PY bench/registry_sweep.py
echo "=== configstore: reads vs etcd, import, watchers"; $PY bench/configstore_bench.py --runs 3
echo "=== watch fan-out: 10,000 config, 1,000 discovery"; $PY bench/watch_fanout.py --runs 3
echo "=== pipelines: executor vs hand-written";          $PY bench/pipelines_executor.py --runs 7
echo "=== pipelines: batch endpoint";                    $PY bench/pipelines_batch.py --runs 3
echo "=== client SDK overhead";                          $PY bench/client_overhead.py --runs 7 --requests 2000
echo "=== monitoring: roll-up throughput";               $PY bench/monitoring_rollup.py --checks 10000 --minutes 10
echo "=== monitoring: pages at 100 and 10,000 services"; $PY bench/monitoring_pages.py --sizes 100,10000 --runs 3
echo "=== monitoring: request metrics on vs off";        $PY bench/platform_request_metrics.py --runs 12 --duration 3
