"""The DAG files as the scheduler sees them: no import errors, the expected tasks, cheap to parse."""

from __future__ import annotations

import json
import sys
import textwrap

from tests.dags.conftest import DAGS, airflow_env, run, write_policy

DESCRIBE = textwrap.dedent("""
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    out = {"errors": {k: str(v)[:500] for k, v in bag.import_errors.items()}, "dags": {}}
    for dag_id, dag in bag.dags.items():
        out["dags"][dag_id] = {
            "max_active_runs": dag.max_active_runs, "catchup": dag.catchup, "schedule": str(dag.schedule),
            "tags": sorted(dag.tags), "params": dict(dag.params),
            "tasks": {t.task_id: {"upstream": sorted(t.upstream_task_ids), "retries": t.retries,
                                   "backoff": t.retry_exponential_backoff, "trigger_rule": str(t.trigger_rule),
                                   "setup": t.is_setup, "teardown": t.is_teardown,
                                   "mapped": type(t).__name__.startswith("Mapped") or hasattr(t, "expand_input"),
                                   "callback": bool(t.on_failure_callback),
                                   "max_active_tis_per_dag": t.max_active_tis_per_dag,
                                   "mode": getattr(t, "mode", None), "timeout": getattr(t, "timeout", None)}
                      for t in dag.tasks},
        }
    print(json.dumps(out, default=str))
""")

PARSE_TIME = textwrap.dedent("""
    import json, runpy, sys, time
    import airflow.sdk  # the DAG processor has Airflow loaded before it parses a file
    before = set(sys.modules)
    t0 = time.perf_counter()
    ns = runpy.run_path(sys.argv[1])
    elapsed = time.perf_counter() - t0
    new = set(sys.modules) - before
    heavy = sorted(m for m in new if m.split(".")[0] in {"pandas", "sqlalchemy", "great_expectations", "pipelines",
                                                          "anonymizers", "expectations", "psycopg", "yaml"})
    dags = sorted(k for k, v in ns.items() if type(v).__name__ == "DAG")
    print(json.dumps({"seconds": elapsed, "heavy": heavy, "dags": dags}))
""")


def describe(airflow_home, tmp_path, lethe_key) -> dict:
    for stem in ("alpha", "beta"):
        (tmp_path / "policies").mkdir(exist_ok=True)
        (tmp_path / "policies" / f"{stem}.yaml").write_text("not even parsed at parse time: {")
    (tmp_path / "policies" / "notes.txt").write_text("ignored")
    env = airflow_env(airflow_home, tmp_path / "policies", tmp_path / "reports", lethe_key)
    return json.loads(run([sys.executable, "-c", DESCRIBE, str(DAGS)], env).stdout.strip().splitlines()[-1])


def test_dagbag_has_one_dag_per_policy_file_and_no_import_errors(airflow_home, tmp_path, lethe_key):
    out = describe(airflow_home, tmp_path, lethe_key)
    assert out["errors"] == {}
    assert sorted(out["dags"]) == ["lethe_alpha", "lethe_beta"]


def test_dag_mirrors_the_steps_of_a_run(airflow_home, tmp_path, lethe_key):
    dag = describe(airflow_home, tmp_path, lethe_key)["dags"]["lethe_alpha"]
    tasks = dag["tasks"]
    assert set(tasks) == {
        "wait_for_store_lock", "plan", "move_held_rows", "release_vault_rows",
        "apply_tables.partitions", "apply_tables.apply", "apply_subjects.partitions", "apply_subjects.apply",
        "coarsen_aggregates", "verify", "report", "release_store_lock",
    }
    up = {t: v["upstream"] for t, v in tasks.items()}
    assert up["plan"] == ["wait_for_store_lock"]
    assert up["move_held_rows"] == ["plan"]
    assert up["release_vault_rows"] == ["move_held_rows"]
    assert up["apply_tables.partitions"] == ["release_vault_rows"]
    assert up["apply_tables.apply"] == ["apply_tables.partitions"]
    assert up["apply_subjects.partitions"] == ["apply_tables.apply"]  # the subjects table goes last
    assert up["apply_subjects.apply"] == ["apply_subjects.partitions"]
    assert up["coarsen_aggregates"] == ["apply_subjects.apply"]
    assert up["verify"] == ["coarsen_aggregates"]
    assert "verify" in up["report"] and "apply_tables.apply" in up["report"]
    assert "report" in up["release_store_lock"]
    # the lock: taken by a setup task, released by a teardown (which runs after a failure too)
    assert tasks["wait_for_store_lock"]["setup"] and tasks["release_store_lock"]["teardown"]
    # one waiting run per DAG, poking in-process with a bounded wait: the other runs of a backfill stay
    # scheduled and poll nothing
    lock = tasks["wait_for_store_lock"]
    assert (lock["mode"], lock["max_active_tis_per_dag"]) == ("poke", 1) and 0 < lock["timeout"] < float("inf")
    assert tasks["apply_tables.apply"]["mapped"] and tasks["apply_subjects.apply"]["mapped"]
    assert dag["max_active_runs"] == 1 and dag["catchup"] is False
    assert "lethe" in dag["tags"] and dag["params"]["partitions"] >= 1
    for name, t in tasks.items():
        assert t["callback"], f"{name} has no failure callback"
        if name != "report":  # a failed expectation is not transient: the report task never retries
            assert t["retries"] >= 1 and t["backoff"] > 1, name


def test_parsing_reads_only_file_stems_and_takes_under_a_second(airflow_home, tmp_path, lethe_key):
    policies = tmp_path / "policies"
    policies.mkdir()
    for i in range(20):
        (policies / f"p{i:02d}.yaml").write_text("{ unparsable on purpose")
    env = airflow_env(airflow_home, policies, tmp_path / "reports", lethe_key)
    out = json.loads(run([sys.executable, "-c", PARSE_TIME, str(DAGS / "lethe_policies.py")], env)
                     .stdout.strip().splitlines()[-1])
    assert len(out["dags"]) == 20
    assert out["heavy"] == []  # no pandas, SQLAlchemy, GX or engine import at parse time
    assert out["seconds"] < 1.0, out


OPEN_CONTEXT = textwrap.dedent("""
    import datetime as dt, sys
    from pipelines import airflow_tasks
    context = {"logical_date": dt.datetime(2026, 6, 30, tzinfo=dt.UTC), "run_id": "manual__t"}
    try:
        airflow_tasks.open_context(sys.argv[1], context)
    except Exception as exc:
        print(type(exc).__name__, exc)
""")


def test_a_task_retries_an_unreachable_store_and_fails_at_once_on_bad_input(airflow_home, tmp_path, lethe_key):
    """A database restarting at 3 a.m. answers again, so Airflow's retries apply; a store path with no
    database behind it, like a bad policy, never will, so the task fails at once with the message."""
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = write_policy(tmp_path / "p", "down", f"postgresql+psycopg://u:pw@127.0.0.1:{port}/store",
                        f"sqlite:///{tmp_path / 'vault.db'}")
    missing = write_policy(tmp_path / "p", "missing", f"sqlite:///{tmp_path / 'nowhere' / 'store.db'}",
                           f"sqlite:///{tmp_path / 'vault.db'}")
    env = airflow_env(airflow_home, tmp_path / "p", tmp_path / "r", lethe_key)

    unreachable = run([sys.executable, "-c", OPEN_CONTEXT, str(down)], env).stdout
    absent = run([sys.executable, "-c", OPEN_CONTEXT, str(missing)], env).stdout

    assert unreachable.startswith(f"UnreachableError cannot reach the store at postgresql+psycopg://u:***@127.0.0.1:"
                                  f"{port}/store"), unreachable
    assert absent.startswith("AirflowFailException no SQLite database at "), absent
    assert not (tmp_path / "nowhere").exists()


def test_a_policy_file_whose_stem_is_no_valid_dag_id_is_skipped_and_the_others_still_load(airflow_home, tmp_path,
                                                                                        lethe_key):
    """`plant 2.yaml` cannot be a DAG (`lethe_plant 2`): it must not take the other policies' DAGs down."""
    policies = tmp_path / "policies"
    policies.mkdir()
    for name in ("alpha.yaml", "plant 2.yaml", "zeta.yaml"):
        (policies / name).write_text("not parsed at parse time")
    env = airflow_env(airflow_home, policies, tmp_path / "reports", lethe_key)
    proc = run([sys.executable, "-c", DESCRIBE, str(DAGS)], env)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["errors"] == {}
    assert sorted(out["dags"]) == ["lethe_alpha", "lethe_zeta"]
    assert "plant 2.yaml skipped" in proc.stdout + proc.stderr
