"""One daily Lethe DAG per policy file (`lethe_<stem>` for each `*.yaml` in $LETHE_POLICY_DIR).

The scheduler re-parses this file every few seconds, so at parse time it only lists the policy
directory and reads file stems: no policy parsing, database, Variable, Connection, pandas,
SQLAlchemy or `pipelines` import. Each task body is a call into `pipelines.airflow_tasks`.

Runs never overlap on a store: the first task waits (one waiting run per DAG, with a bound) until it can
take the store lock for this DAG run; the report task releases it, and a teardown releases it on failure.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from pathlib import Path

from airflow.sdk import Param, PokeReturnValue, TaskGroup, TriggerRule, chain, dag, task

PROJECT = Path(__file__).resolve().parents[1]
POLICY_DIR = Path(os.environ.get("LETHE_POLICY_DIR") or PROJECT / "policies")
START = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
LOCK_WAIT = float(os.environ.get("LETHE_LOCK_WAIT_SECONDS", 6 * 3600))
LOCK_POKE = float(os.environ.get("LETHE_LOCK_POKE_SECONDS", 5))
PARTITIONS = int(os.environ.get("LETHE_APPLY_PARTITIONS", 4))
CATCHUP = os.environ.get("LETHE_CATCHUP", "false").lower() in ("1", "true", "yes")

log = logging.getLogger("lethe.airflow")


def report_dir() -> str:
    """Read at run time: workers may configure a different directory than the DAG processor."""
    return os.environ.get("LETHE_REPORT_DIR") or str(PROJECT / "reports")


def log_failure(context) -> None:
    """One line per failed task: which DAG, task and as-of date, and the exception's type; its text only for
    Lethe's own errors, whose messages never carry a value from the data (a database's may).
    """
    ti = context.get("task_instance") or context.get("ti")
    stamp = context.get("logical_date") or context.get("data_interval_end")
    map_index = getattr(ti, "map_index", -1)
    log.error("lethe task failed: dag=%s task=%s%s as_of=%s error=%s", getattr(ti, "dag_id", "?"),
              getattr(ti, "task_id", "?"), f"[{map_index}]" if map_index is not None and map_index >= 0 else "",
              stamp.date().isoformat() if stamp else "?", _describe(context.get("exception")))


def _describe(exc: BaseException | None) -> str:
    from pipelines.errors import LetheError

    return f"{type(exc).__name__}: {exc}" if isinstance(exc, LetheError) else type(exc).__name__


def _items(mapped) -> list:
    """A mapped task's results (none when it expanded to zero), read by index so no lookup misses."""
    return [] if mapped is None else [mapped[i] for i in range(len(mapped))]


DEFAULT_ARGS = {
    "owner": "lethe",
    "retries": int(os.environ.get("LETHE_RETRIES", 3)),
    "retry_delay": dt.timedelta(seconds=float(os.environ.get("LETHE_RETRY_DELAY_SECONDS", 60))),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=30),
    "on_failure_callback": log_failure,
    "priority_weight": 10,
    "weight_rule": "absolute",
}


def lethe_dag(stem: str, policy_file: Path):
    """The DAG of one policy file; its structure depends on nothing but the file's name."""
    policy = str(policy_file)

    @dag(dag_id=f"lethe_{stem}", schedule="@daily", start_date=START, catchup=CATCHUP, max_active_runs=1,
         default_args=DEFAULT_ARGS, tags=["lethe", "retention"],
         params={"partitions": Param(PARTITIONS, type="integer", minimum=1, maximum=64,
                                     description="key ranges per table for the parallel apply tasks")},
         doc_md=f"Lethe retention run of `{policy_file.name}` as of the logical date. See docs/airflow.md.")
    def lethe():
        # One waiter per DAG (max_active_tis_per_dag=1): the next run's sensor pokes in-process (one cheap
        # query per poke, no process start-up) and takes the store as soon as it is free; the other runs of a
        # backfill stay scheduled in Airflow, costing nothing, and their wait is not counted against the
        # timeout. Waiting runs have the lowest priority, so the run holding the store gets slots first.
        @task.sensor(poke_interval=LOCK_POKE, timeout=LOCK_WAIT, mode="poke", max_active_tis_per_dag=1,
                     priority_weight=1, weight_rule="absolute")
        def wait_for_store_lock(**context) -> PokeReturnValue:
            from pipelines import airflow_tasks

            taken = airflow_tasks.try_lock(policy, context)
            return PokeReturnValue(is_done=taken is not None, xcom_value=taken)

        @task
        def plan(**context) -> dict:
            from pipelines import airflow_tasks

            return airflow_tasks.plan(policy, context, report_dir=report_dir())

        @task
        def move_held_rows(**context) -> dict:
            from pipelines import airflow_tasks

            return airflow_tasks.move_held_rows(policy, context)

        @task
        def release_vault_rows(**context) -> dict:
            from pipelines import airflow_tasks

            return airflow_tasks.release_vault_rows(policy, context)

        @task(trigger_rule=TriggerRule.NONE_FAILED)
        def partitions(phase: str, **context) -> list[dict]:
            from pipelines import airflow_tasks

            return airflow_tasks.partitions(policy, context, phase, context["params"]["partitions"])

        @task(map_index_template="{{ lethe_partition }}")
        def apply(work: dict, **context) -> dict:
            from airflow.sdk import get_current_context

            from pipelines import airflow_tasks

            # names the mapped instance in the UI ("access_logs 2/4") through map_index_template
            get_current_context()["lethe_partition"] = f"{work['table']} {work['part']}/{work['of']}"
            return airflow_tasks.apply_partition(policy, context, work)

        @task(trigger_rule=TriggerRule.NONE_FAILED)
        def coarsen_aggregates(**context) -> dict:
            from pipelines import airflow_tasks

            return airflow_tasks.coarsen(policy, context)

        @task(trigger_rule=TriggerRule.NONE_FAILED)
        def verify(**context) -> list[dict]:
            from pipelines import airflow_tasks

            return airflow_tasks.verify(policy, context)

        @task(trigger_rule=TriggerRule.NONE_FAILED, retries=0)
        def report(planned, moved, released, applied_tables, applied_subjects, expectations,
                   **context) -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from pipelines import airflow_tasks

            started = context["ti"].xcom_pull(task_ids="wait_for_store_lock")  # the setup: passed by id
            out = airflow_tasks.write_report(
                policy, context, report_dir=report_dir(), started_at=started["started_at"], planned=planned,
                moved=moved, released=released, applied=[*_items(applied_tables), *_items(applied_subjects)],
                expectations=expectations)
            if out["status"] != "succeeded":
                raise AirflowFailException(f"Lethe run {out['run_id']} as of {out['as_of']} {out['status']}; "
                                           f"report: {out['report']}")
            return out

        @task
        def release_store_lock(**context) -> bool:
            from pipelines import airflow_tasks

            return airflow_tasks.release_lock(policy, context)

        lock = wait_for_store_lock()
        planned, moved, released = plan(), move_held_rows(), release_vault_rows()
        # Fold aggregates and erase/anonymize: one mapped task per key range of each table; the subjects
        # table goes last so the other tables still find deleted subjects' ids.
        with TaskGroup("apply_tables", tooltip="every policy table but the subjects table") as tables_group:
            tables = apply.expand(work=partitions("tables"))
        with TaskGroup("apply_subjects", tooltip="the subjects table, last") as subjects_group:
            subjects = apply.expand(work=partitions("subjects"))
        coarsened, checked = coarsen_aggregates(), verify()
        done = report(planned, moved, released, tables, subjects, checked)
        unlock = release_store_lock()
        chain(lock, planned, moved, released, tables_group, subjects_group, coarsened, checked, done, unlock)
        unlock.as_teardown(setups=lock)

    return lethe()


# Airflow's rule for DAG ids (airflow.sdk.definitions._internal.node.validate_key): one file whose stem
# breaks it ("plant 2.yaml") would fail this whole DAG file, taking every other policy's DAG down with it.
_DAG_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")

for _file in sorted(POLICY_DIR.glob("*.yaml")):
    if not _DAG_ID.match(f"lethe_{_file.stem}"):
        log.error("policy file %s skipped: its DAG id lethe_%s would not be a valid Airflow DAG id (letters, "
                  "digits, '_', '-', '.' only, at most 250 characters); rename the file", _file.name, _file.stem)
        continue
    globals()[f"lethe_{_file.stem}"] = lethe_dag(_file.stem, _file)
