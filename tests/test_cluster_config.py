"""cluster.yaml validates against Ray's cluster-config schema and exposes nothing publicly."""

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = yaml.safe_load((Path(__file__).resolve().parents[1] / "cluster.yaml").read_text())


def test_cluster_yaml_validates_against_rays_schema():
    validate_config(prepare_config(copy.deepcopy(CLUSTER)))


def test_a_misspelt_node_type_key_is_refused():
    broken = copy.deepcopy(CLUSTER)
    broken["available_node_types"]["gpu_worker"]["max_worker"] = 4
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_workers_scale_from_zero_and_services_bind_to_localhost():
    types = CLUSTER["available_node_types"]
    assert types["gpu_worker"]["resources"]["GPU"] >= 1
    assert all(types[t]["min_workers"] == 0 for t in ("cpu_worker", "gpu_worker"))
    head_commands = " ".join(CLUSTER["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_commands and "0.0.0.0" not in head_commands
    assert "mlflow server --host 127.0.0.1" in head_commands
