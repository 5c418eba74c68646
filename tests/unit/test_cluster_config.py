"""cluster.yaml (AWS) and cluster-gcp.yaml validate against Ray's cluster-config schema, have the same
node types, and expose nothing publicly."""

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray import tune
from ray.autoscaler._private.util import prepare_config, validate_config

from genlab.config import load_config
from genlab.errors import ConfigError
from genlab.sweep.config import SweepConfig
from genlab.sweep.runner import tune_experiment_path
from tests.fake_cluster import FAKE_HEAD_NODE_TYPE, fake_cluster_config
from tests.helpers import REPO

FILES = ("cluster.yaml", "cluster-gcp.yaml")


def _load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


@pytest.mark.parametrize("name", FILES)
def test_cluster_yaml_validates_against_rays_schema(name):
    validate_config(prepare_config(_load(name)))


@pytest.mark.parametrize("name", FILES)
def test_a_misspelt_node_type_key_is_refused(name):
    broken = copy.deepcopy(_load(name))
    broken["available_node_types"]["gpu_worker"]["max_worker"] = 4
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


@pytest.mark.parametrize("name", FILES)
def test_workers_scale_from_zero_and_services_bind_to_localhost(name):
    cluster = _load(name)
    types = cluster["available_node_types"]
    assert types["gpu_worker"]["resources"]["GPU"] >= 1
    assert all(types[t]["min_workers"] == 0 and types[t]["max_workers"] >= 1 for t in ("cpu_worker", "gpu_worker"))
    head_commands = " ".join(cluster["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_commands and "0.0.0.0" not in head_commands
    assert "mlflow server --host 127.0.0.1" in head_commands
    assert "export MLFLOW_TRACKING_URI=http://127.0.0.1:5000" in head_commands  # jobs log to the head's server


def test_gcp_variant_has_the_aws_node_types_with_a_gpu_attached():
    aws, gcp = _load("cluster.yaml"), _load("cluster-gcp.yaml")
    assert gcp["provider"]["type"] == "gcp" and gcp["head_node_type"] == aws["head_node_type"]
    aws_types, gcp_types = aws["available_node_types"], gcp["available_node_types"]
    assert set(gcp_types) == set(aws_types) == {"head", "cpu_worker", "gpu_worker"}
    for name, node in gcp_types.items():
        assert node["resources"] == aws_types[name]["resources"], name
        assert node["node_config"]["machineType"]
    gpu_config = gcp_types["gpu_worker"]["node_config"]
    assert gpu_config["guestAccelerators"][0]["acceleratorCount"] == gcp_types["gpu_worker"]["resources"]["GPU"]
    assert gpu_config["scheduling"]["onHostMaintenance"] == "TERMINATE"  # GCP refuses GPU VMs that live-migrate


@pytest.mark.parametrize("name", FILES)
def test_the_fake_cluster_has_the_node_types_scaled_to_one_machine(name):
    fake = fake_cluster_config(REPO / name, gcs_address="127.0.0.1:6390", max_workers_per_type=1)
    validate_config(fake)  # the schema check; prepare_config needs the provider's example.yaml, which the wheel lacks
    real = _load(name)["available_node_types"]
    types = fake["available_node_types"]
    assert set(types) == set(real) - {"head"} | {FAKE_HEAD_NODE_TYPE}
    assert types[FAKE_HEAD_NODE_TYPE] == {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0}
    for worker in ("cpu_worker", "gpu_worker"):
        resources = types[worker]["resources"]
        assert set(resources) == set(real[worker]["resources"]) | {"object_store_memory"}
        assert resources["CPU"] == 1 and types[worker]["min_workers"] == 0 and types[worker]["max_workers"] == 1
    assert types["gpu_worker"]["resources"]["GPU"] == 1
    assert fake["provider"]["type"] == "fake_multinode" and fake["provider"]["gcs_address"] == "127.0.0.1:6390"


@pytest.mark.parametrize("storage", ["s3://genlab-artifacts/ray_results", "gs://genlab-artifacts/ray_results/"])
def test_a_bucket_uri_reaches_tune_unmangled(storage, tmp_path):
    cfg = load_config(SweepConfig, REPO / "conf/defense_sweep_cluster.yaml", [f"tune.storage_path={storage}"])
    assert cfg.dataset.name == "cifar10" and cfg.classifier.arch == "resnet18"
    path = tune_experiment_path(cfg.tune.storage_path, tmp_path, "defense-sweep-cifar10-20260101-000000")
    assert path == storage.rstrip("/") + "/defense-sweep-cifar10-20260101-000000"
    storage_path, name = path.rsplit("/", 1)  # as runner._run_tune splits it for RunConfig
    run_config = tune.RunConfig(name=name, storage_path=storage_path)
    assert (run_config.storage_path, run_config.name) == (storage.rstrip("/"), "defense-sweep-cifar10-20260101-000000")


def test_the_cluster_sweep_stores_tune_results_in_s3_and_a_local_path_stays_local(tmp_path):
    assert load_config(SweepConfig, REPO / "conf/defense_sweep_cluster.yaml").tune.storage_path == \
        "s3://genlab-artifacts/ray_results"
    assert tune_experiment_path("results", tmp_path, "x") == str(Path("results").resolve() / "x")
    assert tune_experiment_path(None, tmp_path, "x") == str(tmp_path / "ray_results" / "x")


@pytest.mark.parametrize("storage", ["http://example.com/results", "s3://", "hdfs://namenode/results"])
def test_an_unsupported_storage_uri_is_refused_naming_the_key(storage):
    with pytest.raises(ConfigError, match="tune.storage_path"):
        load_config(SweepConfig, REPO / "conf/defense_sweep.yaml", [f"tune.storage_path={storage}"])
