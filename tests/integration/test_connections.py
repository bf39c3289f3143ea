"""Idle and slow connections cannot starve `facelens serve` (issue 13): with RLIMIT_NOFILE 256, 600 sockets
(slowloris, headers then a stalled body, idle; each reconnecting when closed) held for 12 s while GET /health
and a signed ListCollections, on fresh connections every 0.5 s, each answer within 3 s (the suite shares two cores
with other tests; the benchmark holds them to 1 s and measured a worst of 1,045 ms on a busy machine); stalled
sockets alone are closed by the header and body timeouts; the log does not flood (one line per request cut, one report
every 10 s). The full-size run is
benchmarks/connections.py (docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from benchmarks.connections import MODES, report, run

pytestmark = [pytest.mark.long, pytest.mark.integration]
SLOW = 3.0
HEADER_TIMEOUT, BODY_TIMEOUT = 2.0, 3.0


def test_slow_and_idle_connections_do_not_starve_the_server() -> None:
    result = run(nofile=256, connections=600, seconds=12, header_timeout=HEADER_TIMEOUT, body_timeout=BODY_TIMEOUT,
                 operation="ListCollections", baseline_seconds=2, env={"FACELENS_WARMUP": "0"}, slow=SLOW)
    print(report(result))
    assert result["alive"], result["log_tail"]
    attack = result["attack"]
    # at most one probe of each kind may fail: on the suite's shared cores a probe's connection, accepted while
    # the attacker churns, can be the oldest waiting one and be evicted (the benchmark measured 0 and 1 in two
    # 60-s runs); before the fix every probe failed
    assert max(attack.failures.values()) <= 1, (attack.errors[:5], result["log_tail"])
    # probes go out one after another, so a loaded machine answers fewer of the nominal 24 in 12 s (13 seen at
    # load 7, each within 0.9 s); 8 still means one answered at least every 1.5 s throughout the attack
    assert len(attack.latency["health"]) >= 8
    # the app's one line per request (the stalled bodies' requests, cut); else only the 10-second reports
    assert len(result["other_lines"]) <= 10, result["other_lines"][:20]
    assert result["log_growth"] < 200 * result["request_lines"] + 5_000
    alone = result["timeouts"]["lifetimes"]
    for mode in MODES:  # every stalled socket was closed, by its deadline (plus scheduling slack)
        limit = BODY_TIMEOUT if mode == "stalled-body" else HEADER_TIMEOUT
        assert len(alone[mode]) >= 10, (mode, alone)  # the 10 sockets, some closed again after reconnecting
        assert max(alone[mode]) < limit + 1.5, (mode, alone[mode])
