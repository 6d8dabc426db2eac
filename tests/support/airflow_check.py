"""Run by the Airflow virtualenv's Python (scripts/airflow-venv.sh), not by the project's: loads the example
DAG folder into a DagBag and, with ``--test``, runs the DAG once with ``dag.test()``. Writes what it saw as
JSON (import errors, tasks in chain order with their upstreams, schedule, retries, task states) to the file
named by ``--out``, for tests/test_airflow_dag.py to check.

    python tests/support/airflow_check.py DAG_FOLDER DAG_ID --out RESULT.json [--test --variables VARS.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def chain(dag: Any) -> list[str]:
    """Task ids from the root along downstream edges (the DAG is expected to be one chain)."""
    roots = [t for t in dag.tasks if not t.upstream_task_ids]
    order, seen = [], set()
    current = roots[0] if len(roots) == 1 else None
    while current is not None and current.task_id not in seen:
        order.append(current.task_id)
        seen.add(current.task_id)
        following = sorted(current.downstream_task_ids)
        current = dag.get_task(following[0]) if len(following) == 1 else None
    return order


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("dag_id")
    parser.add_argument("--out", required=True)
    parser.add_argument("--test", action="store_true")
    parser.add_argument("--variables")
    args = parser.parse_args(argv)

    import airflow

    try:  # Airflow 3
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2.x
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=args.folder)  # examples: AIRFLOW__CORE__LOAD_EXAMPLES=False
    result: dict[str, Any] = {"airflow": airflow.__version__,
                              "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
                              "dag_ids": sorted(bag.dag_ids)}
    dag = bag.get_dag(args.dag_id) if args.dag_id in bag.dag_ids else None
    if dag is not None:
        result.update({
            "tasks": chain(dag),
            "task_count": len(dag.tasks),
            "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
            "retries": {t.task_id: t.retries for t in dag.tasks},
            "exponential_backoff": {t.task_id: bool(t.retry_exponential_backoff) for t in dag.tasks},
            "commands": {t.task_id: str(getattr(t, "bash_command", "")) for t in dag.tasks},
            "schedule": str(getattr(dag, "schedule", None) or getattr(dag, "timetable", "")),
        })
        if args.test:
            run = dag.test(variable_file_path=args.variables)
            states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()} if run is not None else {}
            result.update({"run_state": str(run.state) if run is not None else None, "states": states})
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
