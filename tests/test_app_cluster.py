"""The dashboard's side of the Ray backend: the "Run on" choice on Train and Sweep, the Cluster
page, the banner of runs waiting for a cluster that is gone, and what the Runs page shows of a
Ray run; plus ``bn_core.views.cluster``'s table of nodes.

No cluster is started: the runner's ``cluster`` is a fake that answers ``capacity()`` and
``info()`` as a RayBackend would (test_app's ``runner`` never schedules, so nothing starts).
"""

from __future__ import annotations

import math
import time

import pytest
import streamlit as st

from bn_core.config import TrainConfig
from bn_core.runs.execution.backends import ray_backend
from bn_core.runs.execution.backends.ray_backend import ClusterError, ClusterInfo, NodeInfo
from bn_core.runs.store.run_store import RunStore
from bn_core.views import cluster as view
from bn_core.views.runs import TABLE_COLUMNS, table_frame, where_caption
from pages import _cluster_ui
from tests.conftest import assert_runs_without_tensorflow
from tests.helpers import APP, open_page, open_with_link

ADDRESS = "10.0.0.5:6379"
HEAD = NodeInfo("a" * 40, "head-host", "10.0.0.5", True, 2.0, 0.0, True)
WORKER = NodeInfo("b" * 40, "worker-1", "10.0.0.6", True, 4.0, 1.0, False)
GONE = NodeInfo("c" * 40, "worker-2", "10.0.0.7", False, 4.0, 0.0, False)
INFO = ClusterInfo(ADDRESS, "127.0.0.1:8265", (WORKER, GONE, HEAD))  # not in display order


class FakeCluster:
    """Answers as a RayBackend on a cluster of ``INFO``'s nodes would; ``problem`` (a
    ClusterError's line) makes every question fail, as an unreachable cluster does."""

    def __init__(self, problem: str | None = None):
        self.problem = problem
        self.asked = 0

    def capacity(self) -> int:
        self.asked += 1
        if self.problem:
            raise ClusterError(self.problem)
        return int(INFO.cpus)

    def info(self) -> ClusterInfo:
        if self.problem:
            raise ClusterError(self.problem)
        return INFO


@pytest.fixture
def configured(runner, monkeypatch):  # noqa: F811
    """RAY_ADDRESS set, and no answer of the cluster cached by an earlier test."""
    monkeypatch.setenv("RAY_ADDRESS", ADDRESS)
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def cluster(configured, runner):  # noqa: F811
    """A configured cluster that answers: the runner's cluster is a FakeCluster."""
    runner.cluster = FakeCluster()
    return runner.cluster


@pytest.fixture
def no_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def ray_runs(store: RunStore, n: int, group: str = "on-ray") -> list[int]:
    return store.create_runs([TrainConfig(seed=i) for i in range(n)], group, backend="ray")


def running_on(store: RunStore, run_id: int, host: str | None) -> None:
    store.transition(run_id, ("queued",), "running", started_at=1.0, node=host)


# ----------------------------------------------------------------------------- views.cluster


def test_node_frame_lists_each_node_with_the_runs_on_its_host(tmp_path):
    store = RunStore(tmp_path)
    on_worker = ray_runs(store, 3)
    running_on(store, on_worker[0], "worker-1")
    running_on(store, on_worker[1], "worker-1")
    running_on(store, on_worker[2], "head-host")
    waiting = ray_runs(store, 1)[0]
    running_on(store, waiting, None)  # its task waits for a node: no host yet
    local = store.create_runs([TrainConfig()], "here")[0]  # a local run on a same-named host
    running_on(store, local, "worker-1")
    ray_runs(store, 1)  # queued: not running anywhere
    frame = view.node_frame(INFO, store.list_runs())
    assert list(frame.columns) == list(view.NODE_COLUMNS)
    assert frame.to_dict("records") == [
        {
            "host": "head-host",
            "node id": "a" * 12,
            "alive": True,
            "CPUs": 2.0,
            "GPUs": 0.0,
            "head": True,
            "running runs": 1,
        },
        {
            "host": "worker-1",
            "node id": "b" * 12,
            "alive": True,
            "CPUs": 4.0,
            "GPUs": 1.0,
            "head": False,
            "running runs": 2,
        },
        {
            "host": "worker-2",
            "node id": "c" * 12,
            "alive": False,
            "CPUs": 4.0,
            "GPUs": 0.0,
            "head": False,
            "running runs": 0,
        },
    ]
    assert view.running_by_host(store.list_runs())[None] == 1


def test_node_frame_of_a_finished_run_and_of_no_nodes(tmp_path):
    store = RunStore(tmp_path)
    run_id = ray_runs(store, 1)[0]
    running_on(store, run_id, "worker-1")
    store.transition(run_id, ("running",), "completed", test_accuracy=0.9, test_loss=0.3)
    assert list(view.node_frame(INFO, store.list_runs())["running runs"]) == [0, 0, 0]
    empty = view.node_frame(ClusterInfo(ADDRESS, None, ()), [])
    assert empty.empty and list(empty.columns) == list(view.NODE_COLUMNS)


def test_cluster_labels_and_links():
    assert view.cluster_label(INFO) == "Ray cluster (6 CPUs on 2 nodes)"  # the dead node's out
    one = ClusterInfo(ADDRESS, None, (NodeInfo("d", "h", "a", True, 1.0, 0.0, True),))
    assert view.cluster_label(one) == "Ray cluster (1 CPU on 1 node)"
    assert view.dashboard_link("127.0.0.1:8265") == "http://127.0.0.1:8265"
    assert view.dashboard_link("https://ray.example.org") == "https://ray.example.org"
    assert view.dashboard_link("") is None and view.dashboard_link(None) is None
    assert view.waiting_banner("it is gone.", 1) == (
        "The Ray cluster cannot take runs: it is gone. 1 run waits for it."
    )
    assert view.waiting_banner("x", 3).endswith("x. 3 runs wait for it.")


# ----------------------------------------------------------------------------- Train, Sweep


def test_train_offers_the_cluster_and_queues_runs_for_it(cluster, runner, have):  # noqa: F811
    at = open_page("pages/train.py")
    choice = at.radio(key="train-backend")
    assert choice.options == ["This machine", "Ray cluster (6 CPUs on 2 nodes)"]
    assert choice.value == "ray"  # the cluster, when one answers
    at.multiselect(key="train-variants").set_value(["lenet"])
    at.number_input(key="train-repeats").set_value(2).run()
    at.button(key="train-start").click().run()
    assert not at.exception and not at.error
    assert [r.backend_name for r in runner.store.list_runs()] == ["ray", "ray"]
    assert runner.store.queued_for("ray") == 2
    at.radio(key="train-backend").set_value("local").run()
    at.button(key="train-start").click().run()
    assert runner.store.queued_for("local") == 2 and runner.store.queued_for("ray") == 2


def test_without_ray_address_there_is_no_choice(no_cluster, runner, have):  # noqa: F811
    at = open_page("pages/train.py")
    assert not [r for r in at.radio if r.key == "train-backend"]
    at.multiselect(key="train-variants").set_value(["lenet"]).run()
    at.button(key="train-start").click().run()
    assert [r.backend_name for r in runner.store.list_runs()] == ["local"]
    assert runner.cluster is None  # nothing asked for one


def test_an_unreachable_cluster_is_one_line_and_runs_stay_here(
    configured,
    runner,  # noqa: F811
    have,  # noqa: F811
    monkeypatch,
):
    why = f"no Ray cluster answers at {ADDRESS} (Connection refused): start its head"
    made = []
    # JobRunner.ensure_cluster makes the runner's one backend, whichever thread asks first.
    monkeypatch.setattr(ray_backend, "RayBackend", lambda: made.append(1) or FakeCluster(why))
    at = open_page("pages/train.py")
    assert made == [1] and isinstance(runner.cluster, FakeCluster)  # made once, for the runner
    assert not [r for r in at.radio if r.key == "train-backend"]
    assert any(why in c.value for c in at.caption)
    at.multiselect(key="train-variants").set_value(["lenet"]).run()
    at.button(key="train-start").click().run()
    assert [r.backend_name for r in runner.store.list_runs()] == ["local"]
    at.switch_page("pages/cluster.py").run()
    assert [e.value for e in at.error] == [why]
    assert made == [1]


def test_the_answer_is_reused_for_a_few_seconds(cluster, have):  # noqa: F811
    began = time.monotonic()
    at = open_page("pages/train.py")
    at.switch_page("pages/sweep.py").run()
    at.switch_page("pages/train.py").run()
    elapsed = time.monotonic() - began
    # Three pages that each ask: one question per CLUSTER_SECONDS (a slow machine may need a
    # second one), not one per page.
    most = 1 + elapsed // _cluster_ui.CLUSTER_SECONDS
    assert 1 <= cluster.asked <= most, (cluster.asked, elapsed)


def test_sweep_queues_its_grid_for_the_cluster(cluster, runner, have):  # noqa: F811
    at = open_page("pages/sweep.py")
    assert at.radio(key="sweep-backend").value == "ray"
    at.button(key="sweep-start").click().run()
    assert not at.exception and not at.error
    runs = runner.store.list_runs()
    assert len(runs) == 9 and {r.backend_name for r in runs} == {"ray"}


def test_sweeps_quick_start_goes_to_the_chosen_backend(cluster, runner, have):  # noqa: F811
    at = open_page("pages/sweep.py")  # the cluster chosen (quick_start_button's default: local)
    at.button(key="sweep-quick-start").click().run()
    assert [t.value for t in at.title] == ["Runs"]
    runs = runner.store.list_runs()
    assert len(runs) == 9 and {r.backend_name for r in runs} == {"ray"}


# ----------------------------------------------------------------------------- the Cluster page


def test_cluster_page_without_a_cluster_says_how_to_use_one(no_cluster, runner):  # noqa: F811
    at = open_page("pages/cluster.py")
    assert [t.value for t in at.title] == ["Cluster"]
    text = at.info[0].value
    assert "this machine" in text and "RAY_ADDRESS=HOST:6379" in text
    assert "docker compose --profile cluster up" in text
    assert not at.dataframe and runner.cluster is None


def test_cluster_page_lists_the_nodes_and_their_runs(cluster, runner):  # noqa: F811
    ids = ray_runs(runner.store, 4)
    running_on(runner.store, ids[0], "worker-1")
    running_on(runner.store, ids[1], "worker-1")
    running_on(runner.store, ids[2], None)  # waiting for a node
    at = open_page("pages/cluster.py")
    assert not at.error
    table = at.dataframe[0].value
    assert list(table["host"]) == ["head-host", "worker-1", "worker-2"]
    assert list(table["running runs"]) == [0, 2, 0]
    assert list(table["alive"]) == [True, True, False]
    assert list(table["node id"]) == ["a" * 12, "b" * 12, "c" * 12]
    assert "Ray cluster (6 CPUs on 2 nodes)" in at.markdown[0].value
    assert ADDRESS in at.markdown[0].value
    links = [e.proto for e in at.get("link_button")]
    assert [(link.label, link.url) for link in links] == [
        ("Ray dashboard", "http://127.0.0.1:8265")
    ]
    assert any(
        "1 run(s) queued for the cluster, 1 waiting for a node" in c.value for c in at.caption
    )


# ----------------------------------------------------------------------------- the banner


def test_runs_waiting_for_a_gone_cluster_can_run_here(cluster, runner):  # noqa: F811
    ray_runs(runner.store, 2)
    runner.cluster_problem = f"the Ray cluster at {ADDRESS} is unreachable: timed out"
    banner = (
        f"The Ray cluster cannot take runs: the Ray cluster at {ADDRESS} is unreachable: "
        "timed out. 2 runs wait for it."
    )
    at = open_page("pages/train.py")
    assert banner in [w.value for w in at.warning]
    assert "Run them on this machine" not in [b.label for b in at.button]  # Runs, Cluster only
    at.switch_page("pages/runs.py").run()
    assert banner in [w.value for w in at.warning]
    at.button(key="runs-run-here").click().run()
    assert not at.exception
    assert runner.store.queued_for("ray") == 0 and runner.store.queued_for("local") == 2
    assert "2 run(s) will run on this machine." in [s.value for s in at.success]
    assert banner not in [w.value for w in at.warning]
    assert not [b for b in at.button if b.key == "runs-run-here"]


def test_the_banner_needs_both_a_problem_and_waiting_runs(cluster, runner):  # noqa: F811
    runner.cluster_problem = "gone"
    at = open_page("pages/cluster.py")  # nothing queued for Ray: nothing to say
    assert not [w for w in at.warning if "cannot take runs" in w.value]
    ray_runs(runner.store, 1)
    at.run()
    assert any("gone. 1 run waits for it." in w.value for w in at.warning)
    assert at.button(key="cluster-run-here").label == "Run them on this machine"
    runner.cluster_problem = None  # the runner reached it again
    at.run()
    assert not [w for w in at.warning if "cannot take runs" in w.value]


# ----------------------------------------------------------------------------- the Runs page


def test_runs_table_shows_speed_and_a_ray_runs_card_its_node(cluster, runner):  # noqa: F811
    store = runner.store
    done, lost = ray_runs(store, 2)
    running_on(store, done, "worker-1")
    store.transition(
        done, ("running",), "completed", test_accuracy=0.9, test_loss=0.3, images_per_second=2345.6
    )
    running_on(store, lost, "worker-2")
    error = "the Ray node worker-2 (node id cccccccccccc) was lost; metrics up to then are kept"
    store.transition(lost, ("running",), "interrupted", error=error)
    at = open_with_link("pages/runs.py", runs=f"{done},{lost}")
    table = at.dataframe[0].value
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert list(TABLE_COLUMNS).index("img/s") == list(TABLE_COLUMNS).index("node") + 1
    speed = dict(zip(table["run"], table["img/s"], strict=True))
    assert speed[done] == pytest.approx(2345.6) and math.isnan(speed[lost])  # blank
    captions = " ".join(c.value for c in at.caption)
    assert "ran on worker-1 (Ray)" in captions and "ran on worker-2 (Ray)" in captions
    assert any(error in e.value for e in at.error)
    at.button(key=f"resume-{lost}").click().run()  # Resume is backend-neutral
    again = store.get(lost)
    assert (again.status, again.backend_name) == ("queued", "ray")


def test_where_caption(tmp_path):
    store = RunStore(tmp_path)
    local, ray = store.create_runs([TrainConfig()], "g")[0], ray_runs(store, 1)[0]
    assert where_caption(store.get(local)) is None
    assert where_caption(store.get(ray)) == "waiting for a Ray node"
    running_on(store, ray, "gpu-3")
    assert where_caption(store.get(ray)) == "runs on gpu-3 (Ray)"
    frame = table_frame(store.list_runs(), {}, {})
    assert list(frame["img/s"]) == [None, None]


# ----------------------------------------------------------------------------- no Ray import


def test_without_ray_address_no_page_imports_ray(tmp_path):
    """The real runner, every page that could ask about a cluster: Ray stays unimported."""
    assert_runs_without_tensorflow(
        f"""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({APP!r}, default_timeout=60).run()
        for page in ("pages/sweep.py", "pages/cluster.py", "pages/runs.py", "pages/train.py"):
            at.switch_page(page).run()
            assert not at.exception, (page, [e.value for e in at.exception])
        ray = sorted(m for m in sys.modules if m.split(".")[0] == "ray")
        assert not ray, ray[:5]
        assert not [r for r in at.radio if r.key == "train-backend"]
        """,
        tmp_path / "home",
        env={"RAY_ADDRESS": None},
    )
