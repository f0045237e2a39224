"""``dethrone serving`` against a fake /health/ready (two workers)."""

from __future__ import annotations

import itertools

from dethrone.cli import serving_cmd


class _Answer:
    def __init__(self, body):
        self.body = body

    def json(self):
        return self.body


def test_collect_sees_every_worker_once():
    views = itertools.cycle(
        [
            {"pid": 11, "status": "ready", "models": {"champion": "3", "challenger": None}},
            {"pid": 12, "status": "ready", "models": {"champion": "4", "challenger": None}},
        ]
    )
    calls = []

    def get(url, **kw):
        calls.append((url, kw["headers"]))
        return _Answer(next(views))

    got = serving_cmd.collect("http://r:8000/", 40, get=get)
    assert {pid: v["models"]["champion"] for pid, v in got.items()} == {"11": "3", "12": "4"}
    assert calls[0] == ("http://r:8000/health/ready", {"Connection": "close"})
    assert len(calls) < 40  # stops once no new worker shows up


def test_command_is_registered():
    from dethrone.cli import build_parser

    args = build_parser().parse_args(["serving", "--tries", "3"])
    assert args.tries == 3 and args._run is serving_cmd.run
