"""launch.py without starting ranks: the torchrun command for one and several hosts, the request's
`nodes` checks, and how the supervisor turns rank 0's terminal event and torchrun's exit code
into the run's outcome (every combination in one table)."""

from __future__ import annotations

import pytest

from loraspec_worker import launch
from loraspec_worker.protocol import Cancelled, WorkerError


def _flag(cmd, name):
    return cmd[cmd.index(name) + 1]


def test_one_host_is_a_standalone_torchrun_of_train_rank():
    cmd = launch.torchrun_command("/tmp/r.json", 4, None, "/tmp/logs")
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--standalone" in cmd
    assert _flag(cmd, "--nproc-per-node") == "4" and _flag(cmd, "--max-restarts") == "0"
    assert _flag(cmd, "--log-dir") == "/tmp/logs"  # the launcher's files in a folder the supervisor removes
    assert cmd[-4:] == ["-m", "loraspec_worker", "train-rank", "/tmp/r.json"]
    assert "--standalone" in launch.torchrun_command("/tmp/r.json", 2, {"count": 1, "rank": 0, "endpoint": None}, "/tmp/logs")


def test_several_hosts_use_a_static_rendezvous_so_node_0_holds_rank_0():
    cmd = launch.torchrun_command("/tmp/r.json", 8, {"count": 3, "rank": 2, "endpoint": "10.0.0.1:29500"}, "/tmp/logs")
    assert "--standalone" not in cmd
    assert (_flag(cmd, "--nnodes"), _flag(cmd, "--node-rank"), _flag(cmd, "--rdzv-backend"), _flag(cmd, "--rdzv-endpoint")) == \
        ("3", "2", "static", "10.0.0.1:29500")


@pytest.mark.parametrize("nodes, field", [({"count": 2, "rank": 0}, "nodes.endpoint"), ({"count": 2, "rank": 2, "endpoint": "h:1"}, "nodes.rank"),
                                          ({"count": 2, "rank": -1, "endpoint": "h:1"}, "nodes.rank")])
def test_bad_nodes_are_usage_errors_naming_the_field(nodes, field):
    with pytest.raises(WorkerError) as err:
        launch.check_nodes(2, nodes, "cpu")
    assert err.value.code == "E_USAGE" and field in err.value.message


DONE = {"type": "done", "result": {"processes": 2}}
CANCELLED = {"type": "error", "code": "E_CANCELLED", "message": "cancelled"}
INTERNAL = {"type": "error", "code": "E_INTERNAL", "message": "RuntimeError: Connection closed by peer"}
DIVERGED = {"type": "error", "code": "E_TRAIN_DIVERGED", "message": "loss is nan", "hint": "lower learning_rate"}
FOLLOWER = {"count": 2, "rank": 1, "endpoint": "h:1"}

# (rank 0's terminal event, torchrun's exit code, the supervisor got a signal, nodes) -> outcome
OUTCOMES = [
    (DONE, 0, False, None, {"processes": 2}),
    (DONE, 1, False, None, "E_WORKER_CRASHED"),  # rank 0 finished but another rank failed
    (DIVERGED, 1, False, None, "E_TRAIN_DIVERGED"),
    (DIVERGED, 1, True, None, "E_TRAIN_DIVERGED"),
    (CANCELLED, 130, True, None, Cancelled),
    (CANCELLED, 1, False, None, "E_WORKER_CRASHED"),  # torchrun's SIGTERM after another rank died
    (INTERNAL, 1, False, None, "E_WORKER_CRASHED"),  # a collective broken by the dead peer
    (None, 1, False, None, "E_WORKER_CRASHED"),
    (None, 1, True, None, Cancelled),
    (None, 0, False, None, "E_WORKER_CRASHED"),  # node 0 must hear from rank 0
    (None, 0, False, FOLLOWER, {"processes": 2, "nodeRank": 1, "follower": True}),
    (None, 1, False, FOLLOWER, "E_WORKER_CRASHED"),
]


@pytest.mark.parametrize("terminal, code, signalled, nodes, expected", OUTCOMES)
def test_outcome_table(terminal, code, signalled, nodes, expected):
    if isinstance(expected, dict):
        assert launch._outcome(terminal, code, signalled, nodes) == expected
    elif expected is Cancelled:
        with pytest.raises(Cancelled):
            launch._outcome(terminal, code, signalled, nodes)
    else:
        with pytest.raises(WorkerError) as err:
            launch._outcome(terminal, code, signalled, nodes)
        assert err.value.code == expected
        if expected == "E_TRAIN_DIVERGED":
            assert err.value.hint == "lower learning_rate"
