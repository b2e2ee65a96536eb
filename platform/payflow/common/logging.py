"""One log format for every worker: timestamped lines on stdout (supervisor keeps the files)."""

from __future__ import annotations

import logging
import os


def setup(name: str) -> logging.Logger:
    logging.basicConfig(
        level=os.environ.get("PAYFLOW_LOG_LEVEL", "INFO"),
        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    return logging.getLogger(name)
