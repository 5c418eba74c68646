"""cluster.yaml (AWS) and cluster-gcp.yaml validate against Ray's cluster-config schema, have the same
node types, expose nothing publicly, and keep each promise of README "Running on a cluster": Ray token auth
on every node, least-privilege roles, no public IPs for GCP workers, SSH only from a configured CIDR (their
infrastructure files conf/cluster_aws_security.yaml and conf/cluster_gcp_security.yaml, parsed here)."""

import copy
import shlex
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
WORKER_TYPES = ("cpu_worker", "gpu_worker")


def _load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def _exported_before_ray_start(command: str) -> dict[str, str]:
    """Return the variables a start command exports (`export A=1 B=2;`) before its `ray start`; asserts it has one."""
    exported: dict[str, str] = {}
    for statement in command.split(";"):
        words = shlex.split(statement)
        if words[:2] == ["ray", "start"]:
            return exported
        if words[:1] == ["export"]:
            exported.update(word.split("=", 1) for word in words[1:])
    raise AssertionError(f"no `ray start` in {command!r}")


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


@pytest.mark.parametrize("name", FILES)
def test_every_node_starts_ray_with_token_auth_and_the_token_is_copied_to_every_node(name):
    cluster = _load(name)
    starts = {"head": [c for c in cluster["head_start_ray_commands"] if "ray start" in c],
              "worker": [c for c in cluster["worker_start_ray_commands"] if "ray start" in c]}
    token_paths = set()
    for role, commands in starts.items():
        assert len(commands) == 1, role
        exported = _exported_before_ray_start(commands[0])
        assert exported["RAY_AUTH_MODE"] == "token", role
        token_paths.add(exported["RAY_AUTH_TOKEN_PATH"])
    (token_path,) = token_paths  # head and workers read one file ...
    assert cluster["file_mounts"][token_path] == "~/.ray/auth_token"  # ... that the launcher copies to every node
    assert _exported_before_ray_start(starts["head"][0])["GENLAB_HOME"] == "/home/ray/genlab-work"
    assert "-v /home/ubuntu/genlab-work:/home/ray/genlab-work" in cluster["docker"]["head_run_options"]


def _aws_stack() -> dict:
    return yaml.safe_load((REPO / "conf/cluster_aws_security.yaml").read_text())


def test_aws_nodes_use_the_stacks_security_group_which_admits_ssh_from_the_admin_cidr_only():
    types = _load("cluster.yaml")["available_node_types"]
    groups = {tuple(node["node_config"]["SecurityGroupIds"]) for node in types.values()}
    assert len(groups) == 1 and len(next(iter(groups))) == 1  # one named group: Ray creates no default one (SSH from 0.0.0.0/0)
    stack = _aws_stack()
    assert "Default" not in stack["Parameters"]["AdminCidr"]  # the stack refuses to deploy without your network
    (rule,) = stack["Rules"]["AdminCidrIsNotTheInternet"]["Assertions"]
    assert rule["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AdminCidr"}, "0.0.0.0/0"]}]}
    group = stack["Resources"]["ClusterSecurityGroup"]
    assert group["Properties"]["GroupName"] == "genlab-ray"
    assert group["Properties"]["SecurityGroupIngress"] == [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": {"Ref": "AdminCidr"}}]
    ingress = [r["Properties"] for r in stack["Resources"].values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"]
    own_group = {"Fn::GetAtt": ["ClusterSecurityGroup", "GroupId"]}
    assert ingress and all(r["SourceSecurityGroupId"] == own_group == r["GroupId"] and "CidrIp" not in r for r in ingress)
    assert stack["Outputs"]["SecurityGroupId"]["Value"] == own_group


def _statements(role: dict, stack: dict) -> list[dict]:
    """Return every policy statement a role of the stack has: inline ones and those of its managed policies."""
    inline = [s for policy in role["Properties"].get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
    managed = [s for ref in role["Properties"].get("ManagedPolicyArns", [])
               for s in stack["Resources"][ref["Ref"]]["Properties"]["PolicyDocument"]["Statement"]]
    return inline + managed


def test_aws_head_and_workers_have_least_privilege_instance_profiles():
    types = _load("cluster.yaml")["available_node_types"]
    stack = _aws_stack()
    profiles = {r["Properties"]["InstanceProfileName"]: r["Properties"]["Roles"][0]["Ref"]
                for r in stack["Resources"].values() if r["Type"] == "AWS::IAM::InstanceProfile"}
    assert types["head"]["node_config"]["IamInstanceProfile"] == {"Name": "genlab-ray-head"}
    assert all(types[t]["node_config"]["IamInstanceProfile"] == {"Name": "genlab-ray-worker"} for t in WORKER_TYPES)
    bucket = stack["Parameters"]["Bucket"]["Default"]
    assert bucket == "genlab-artifacts"
    bucket_arns = [{"Fn::Sub": "arn:aws:s3:::${Bucket}"}, {"Fn::Sub": "arn:aws:s3:::${Bucket}/*"}]
    worker = _statements(stack["Resources"][profiles["genlab-ray-worker"]], stack)
    assert all(s["Resource"] in bucket_arns and all(a.startswith("s3:") for a in s["Action"]) for s in worker)
    assert not any("*" in a for s in worker for a in s["Action"])  # named actions, the one bucket
    head = _statements(stack["Resources"][profiles["genlab-ray-head"]], stack)
    beyond_bucket = [s for s in head if s["Resource"] not in bucket_arns]
    assert {a.split(":")[0] for s in beyond_bucket for a in s["Action"]} == {"ec2", "iam"}
    assert not any("*" in a for s in head for a in s["Action"])
    (pass_role,) = [s for s in head if "iam:PassRole" in s["Action"]]
    assert pass_role["Resource"] == [{"Fn::GetAtt": ["WorkerRole", "Arn"]}, {"Fn::GetAtt": ["WorkerProfile", "Arn"]}]


def _gcp_deployment() -> dict[str, dict]:
    resources = yaml.safe_load((REPO / "conf/cluster_gcp_security.yaml").read_text())["resources"]
    return {r["name"]: r for r in resources}


def test_gcp_workers_have_no_public_ip_and_ssh_reaches_only_the_head_from_the_admin_cidr():
    types = _load("cluster-gcp.yaml")["available_node_types"]
    deployment = _gcp_deployment()
    subnet = deployment["genlab-ray-us-central1"]
    assert deployment["genlab-ray"]["properties"] == {"autoCreateSubnetworks": False}  # not GCP's default network
    assert subnet["properties"]["network"] == "$(ref.genlab-ray.selfLink)"
    for name, node in types.items():
        (interface,) = node["node_config"]["networkInterfaces"]
        assert interface["subnetwork"].endswith("/subnetworks/genlab-ray-us-central1"), name
        assert "genlab-ray" in node["node_config"]["tags"]["items"], name
        assert ("accessConfigs" in interface) == (name == "head"), name  # an access config is a public IP
    assert "genlab-ray-head" in types["head"]["node_config"]["tags"]["items"]
    firewalls = [r["properties"] for r in deployment.values() if r["type"] == "compute.v1.firewall"]
    assert all(f["network"] == "$(ref.genlab-ray.selfLink)" and f["direction"] == "INGRESS" for f in firewalls)
    from_addresses = [f for f in firewalls if "sourceRanges" in f]
    (ssh,) = from_addresses
    assert ssh["allowed"] == [{"IPProtocol": "tcp", "ports": ["22"]}] and ssh["targetTags"] == ["genlab-ray-head"]
    (cidr,) = ssh["sourceRanges"]
    assert not cidr.endswith("/0")
    assert all(f["sourceTags"] == ["genlab-ray"] for f in firewalls if f is not ssh)  # the rest: node to node
    nat = [r for r in deployment.values() if r["type"] == "compute.v1.router"]
    assert nat and nat[0]["properties"]["nats"]  # egress for workers without public IPs


def test_gcp_service_accounts_reach_only_the_one_bucket_and_the_head_launches_workers():
    cluster = _load("cluster-gcp.yaml")
    types, project = cluster["available_node_types"], cluster["provider"]["project_id"]
    accounts = {name: node["node_config"]["serviceAccounts"][0]["email"] for name, node in types.items()}
    assert accounts["head"] == f"genlab-ray-head@{project}.iam.gserviceaccount.com"
    assert all(accounts[t] == f"genlab-ray-worker@{project}.iam.gserviceaccount.com" for t in WORKER_TYPES)
    bindings = [r for r in _gcp_deployment().values() if r["type"].endswith("iamMemberBinding")]
    by_member: dict[str, list[tuple[str, str]]] = {}
    for binding in bindings:
        props = binding["properties"]
        scope = f"bucket:{props['bucket']}" if "bucket" in props else f"{binding['type'].split(':')[0]}:{props['resource']}"
        by_member.setdefault(props["member"], []).append((props["role"], scope))
    head, worker = "serviceAccount:$(ref.genlab-ray-head.email)", "serviceAccount:$(ref.genlab-ray-worker.email)"
    assert set(by_member) == {head, worker}
    assert by_member[worker] == [("roles/storage.objectAdmin", "bucket:genlab-artifacts")]
    assert sorted(by_member[head]) == sorted([
        ("roles/storage.objectAdmin", "bucket:genlab-artifacts"),
        ("roles/compute.instanceAdmin.v1", f"gcp-types/cloudresourcemanager-v1:{project}"),
        ("roles/iam.serviceAccountUser", "gcp-types/iam-v1:$(ref.genlab-ray-worker.name)")])
