"""The Python file spark-submit runs on the driver; lib and jobs arrive via --py-files."""

from __future__ import annotations

import sys

from lib.cli import driver_main, exit_process

if __name__ == "__main__":
    exit_process(driver_main(sys.argv[1:]))
