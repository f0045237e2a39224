"""A process that logs one row every few milliseconds and prints each acknowledged row.

Run by test_prediction_log.py and killed with SIGKILL: the lines it printed are what the
caller was told was logged; the database shows what survived.
"""

from __future__ import annotations

import sys
import time

from dethrone.store import PredictionLogWriter, make_engine


def main(url: str, flush_seconds: float) -> None:
    log = PredictionLogWriter(make_engine(url), flush_seconds=flush_seconds)
    i = 0
    while True:
        log.append([{"request_id": f"k{i}", "row": 0, "arm": "champion", "prediction": i}])
        print(i, time.time(), flush=True)
        i += 1
        time.sleep(0.002)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
