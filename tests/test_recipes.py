"""The cluster recipes (docs/recipes/, README "Running on a Ray cluster") are checked, not just shown.

- the Ray cluster launcher YAML against the schema inside the installed `ray` package, raw and after
  Ray fills in its defaults (what `ray up` validates);
- the KubeRay RayJob manifest: parsed, its entrypoint a `tonesweep sweep` our own parser accepts,
  its Ray version the one we install;
- the README's `ray job submit` command: Ray's own CLI parses it, and its entrypoint is a
  `tonesweep sweep` our parser accepts.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from cli.parser import build_parser

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "docs" / "recipes"


def parse_tonesweep(argv: list[str]):
    assert argv[0] == "tonesweep", argv
    return build_parser().parse_args(argv[1:])  # argparse exits (SystemExit) on anything it rejects


def test_cluster_launcher_yaml_fits_ray_s_own_schema():
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((RECIPES / "ray-cluster.yaml").read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    filled = prepare_config(config)  # what `ray up` does before validating
    validate_config(filled)
    assert filled["provider"]["type"] == "local" and len(filled["provider"]["worker_ips"]) == filled["max_workers"]
    assert any("make install" in command for command in config["setup_commands"])


def test_rayjob_manifest_runs_a_real_sweep_command():
    import ray

    job = yaml.safe_load((RECIPES / "rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    args = parse_tonesweep(shlex.split(job["spec"]["entrypoint"]))
    assert args.command == "sweep" and args.trials > 0 and args.tracking_uri.startswith("http://")
    assert args.storage.startswith("s3://")  # pods share no disk: the object store (README: Shared storage)
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__
    images = {c["image"] for c in cluster["headGroupSpec"]["template"]["spec"]["containers"]}
    for group in cluster["workerGroupSpecs"]:
        images |= {c["image"] for c in group["template"]["spec"]["containers"]}
    assert len(images) == 1  # driver and trial workers run the same tonesweep


def test_readme_job_submit_command_parses_with_ray_and_tonesweep():
    from ray.dashboard.modules.job.cli import submit

    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^ray job submit .*$", readme, flags=re.M)
    assert commands, "README has no `ray job submit` command"
    for command in commands:
        argv = shlex.split(command)
        params = submit.make_context("submit", argv[3:]).params  # Ray's own option parser
        assert params["address"].startswith("http://127.0.0.1:")
        args = parse_tonesweep(list(params["entrypoint"]))
        assert args.command == "sweep" and args.address is None  # inside a job Ray sets RAY_ADDRESS
