"""Exporters: a table per mapping row and per escape, and every example through each target's
own validator (kubernetes-validate, python-hcl2, systemd-analyze verify, bash)."""

import glob
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from conftest import ROOT, model
from lib.cli import modelctl
from lib.core.spec import parse_spec
from lib.export import common, hcltext, kubernetes, nomad, slurm, source, systemd, targets

EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.json")))
K8S_VERSIONS = ("1.32", "1.33")


def read_example(path):
    with open(path) as handle:
        return json.load(handle)


def spec_of(**fields):
    body = {"name": "m", "command": ["/bin/serve", "--port", "{port}"], "port": "auto"}
    body.update(fields)
    gpus = body.pop("gpus", None)
    spec = parse_spec(body)
    if gpus is not None:
        spec["gpus"] = gpus  # issue 12's field, built directly: today's parser lacks it
    return spec


def k8s(spec, **options):
    options.setdefault("image", "registry/m:1")
    result = kubernetes.export(spec, common.Options(**options))
    documents = _yaml_documents(result)
    return result, {document["kind"]: document for document in documents}


def _yaml_documents(result):
    yaml = pytest.importorskip("yaml")
    (text,) = result.files.values()
    return [document for document in yaml.safe_load_all(text) if document]


def container_of(kinds):
    return kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def fields(result):
    return [item["field"] for item in result.unmapped]


# -- Kubernetes: mapping rows -------------------------------------------------------


@pytest.mark.parametrize(
    "health, period, threshold",
    [
        ({"http": "/h", "interval": 5, "start_period": 1200}, 5, 240),
        ({"http": "/h", "interval": 2, "start_period": 31}, 2, 16),
        ({"tcp": True, "interval": 0.5, "start_period": 3}, 1, 3),
        ({"http": "/h", "interval": 10, "start_period": 0}, 10, 1),
    ],
)
def test_the_startup_probe_covers_the_start_period(health, period, threshold):
    _, kinds = k8s(spec_of(health=health))
    startup = container_of(kinds)["startupProbe"]
    assert startup["periodSeconds"] == period
    assert startup["failureThreshold"] == threshold
    assert startup["failureThreshold"] * startup["periodSeconds"] >= health["start_period"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert "initialDelaySeconds" not in container_of(kinds)[probe]


def test_liveness_and_readiness_take_the_retries_and_a_tcp_probe_maps():
    _, kinds = k8s(spec_of(health={"tcp": True, "retries": 7, "timeout": 2.5}))
    container = container_of(kinds)
    assert container["livenessProbe"] == {
        "tcpSocket": {"port": "http"},
        "failureThreshold": 7,
        "periodSeconds": 2,
        "timeoutSeconds": 3,
    }
    assert container["readinessProbe"]["failureThreshold"] == 7


def test_a_deployment_is_recreated_and_a_service_names_the_port():
    _, kinds = k8s(spec_of(port=9000))
    assert kinds["Deployment"]["spec"]["strategy"] == {"type": "Recreate"}
    assert kinds["Deployment"]["spec"]["replicas"] == 1
    assert container_of(kinds)["args"] == ["--port", "9000"]
    assert {"name": "PORT", "value": "9000"} in container_of(kinds)["env"]
    assert kinds["Service"]["spec"]["ports"][0]["port"] == 9000


def test_secrets_go_to_a_secret_and_never_into_the_container():
    spec = spec_of(
        command=["/bin/serve", "--api-key", "s3cret", "--token=t0k"],
        env={"HF_TOKEN": "hf_x", "HF_HOME": "/data"},
    )
    result, kinds = k8s(spec)
    container = container_of(kinds)
    assert kinds["Secret"]["stringData"] == {
        "HF_TOKEN": "hf_x",
        "MODELD_SECRET_ARG_2": "s3cret",
        "MODELD_SECRET_ARG_3": "t0k",
    }
    assert container["args"] == [
        "--api-key",
        "$(MODELD_SECRET_ARG_2)",
        "--token=$(MODELD_SECRET_ARG_3)",
    ]
    text = json.dumps(container)
    assert "s3cret" not in text and "hf_x" not in text and "t0k" not in text
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs["HF_TOKEN"] == {"name": "m-secrets", "key": "HF_TOKEN"}


@pytest.mark.parametrize(
    "gpus, env, count, lost",
    [
        ({"count": 2}, {}, 2, []),
        ({"ids": ["0", "GPU-8e52"]}, {}, 2, ["gpus.ids"]),
        (
            {"count": 1, "min_free_mib": 20000, "wait": 60},
            {},
            1,
            ["gpus.min_free_mib", "gpus.wait"],
        ),
        ({"count": 1, "shared": True}, {}, 1, ["gpus.shared"]),
        (None, {"CUDA_VISIBLE_DEVICES": "0,1"}, 2, ["env.CUDA_VISIBLE_DEVICES"]),
    ],
)
def test_gpus_become_nvidia_gpu_limits(gpus, env, count, lost):
    result, kinds = k8s(spec_of(gpus=gpus, env=env))
    assert container_of(kinds)["resources"]["limits"]["nvidia.com/gpu"] == count
    assert fields(result) == lost
    assert all(e["name"] != "CUDA_VISIBLE_DEVICES" for e in container_of(kinds).get("env", []))


@pytest.mark.parametrize(
    "name, label",
    [("qwen2.5-7b", "qwen2-5-7b"), ("7b_chat", "m-7b-chat"), ("llama", "llama"), ("a..b", "a-b")],
)
def test_names_become_dns_labels_and_the_rename_is_reported(name, label):
    assert common.dns_label(name) == label
    assert common.DNS_LABEL.match(label)
    result, kinds = k8s(spec_of(name=name))
    assert kinds["Deployment"]["metadata"]["name"] == label
    assert kinds["Service"]["metadata"]["name"] == label
    renamed = [{"kind": "name", "from": name, "to": label}] if name != label else []
    assert result.renames == renamed


@pytest.mark.parametrize(
    "key, value, is_label",
    [
        ("team", "search", True),
        ("example.com/team", "a.b_c-d", True),
        ("reads", "the PORT environment variable", False),
        ("x", "-leading", False),
        ("k", "v" * 64, False),
    ],
)
def test_labels_only_where_valid_otherwise_annotations(key, value, is_label):
    _, kinds = k8s(spec_of(labels={key: value}))
    metadata = kinds["Deployment"]["metadata"]
    assert (key in metadata.get("labels", {})) is is_label
    assert (key in metadata.get("annotations", {})) is not is_label


@pytest.mark.parametrize(
    "text, escaped",
    [("$(HOME)", "$$(HOME)"), ("a$(b)c$(d)", "a$$(b)c$$(d)"), ("$HOME", "$HOME"), ("${X}", "${X}")],
)
def test_kubernetes_escapes_variable_references(text, escaped):
    assert kubernetes.escape(text) == escaped
    _, kinds = k8s(spec_of(command=["/bin/serve", text], env={"V": text}))
    assert container_of(kinds)["args"] == [escaped]
    assert {"name": "V", "value": escaped} in container_of(kinds)["env"]


@pytest.mark.parametrize(
    "version, signal, has_stop_signal, lost",
    [
        ("1.32", "SIGINT", False, ["stop.signal"]),
        ("1.33", "SIGINT", True, []),
        ("1.34", "SIGQUIT", True, []),
        ("1.30", "SIGTERM", False, []),
        ("1.33", "SIGTERM", False, []),
    ],
)
def test_stop_signal_only_for_a_version_that_has_it(version, signal, has_stop_signal, lost):
    result, kinds = k8s(spec_of(stop={"signal": signal, "timeout": 45}), k8s_version=version)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert ("lifecycle" in pod["containers"][0]) is has_stop_signal
    assert ("os" in pod) is has_stop_signal
    assert pod["terminationGracePeriodSeconds"] == 45
    assert fields(result) == lost


@pytest.mark.parametrize(
    "restart, logs, lost",
    [
        ({}, {}, []),
        ({"policy": "no"}, {}, ["restart.policy"]),
        ({"policy": "always", "max_retries": None}, {}, []),
        ({"max_retries": 2}, {}, ["restart.max_retries"]),
        ({"backoff": 5, "backoff_max": 100}, {}, ["restart.backoff", "restart.backoff_max"]),
        ({"reset_after": 10}, {}, ["restart.reset_after"]),
        ({}, {"max_bytes": 2048, "backups": 1}, ["logs.max_bytes", "logs.backups"]),
    ],
)
def test_what_kubernetes_cannot_carry_is_unmapped_and_annotated(restart, logs, lost):
    result, kinds = k8s(spec_of(restart=restart, logs=logs))
    assert fields(result) == lost
    annotations = kinds["Deployment"]["metadata"].get("annotations", {})
    assert (common.UNMAPPED_ANNOTATION in annotations) is bool(lost)
    for field in lost:
        assert field in annotations[common.UNMAPPED_ANNOTATION]


def test_a_log_probe_and_an_unknown_field_are_unmapped():
    spec = spec_of(health={"log": "Uvicorn running"})
    spec["activation"] = {"idle_timeout": 60}
    result, kinds = k8s(spec)
    assert fields(result) == ["activation", "health.log"]
    assert "startupProbe" not in container_of(kinds)


def test_kubernetes_needs_an_image():
    with pytest.raises(ValueError, match="--image"):
        kubernetes.export(spec_of(), common.Options())


# -- Nomad ---------------------------------------------------------------------------


def hcl(result):
    hcl2 = pytest.importorskip("hcl2")
    (text,) = result.files.values()
    return _unquote(hcl2.loads(text))


def _unquote(value):
    """python-hcl2 keeps the quotes of strings and labels: take them off (JSON decoding)."""
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_unquote(item) for item in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return json.loads(value)
    return value


def nomad_task(spec):
    result = nomad.export(spec, common.Options())
    job = hcl(result)["job"][0]
    (name,) = job
    group = job[name]["group"][0][name]
    return result, job[name], group, group["task"][0][name]


@pytest.mark.parametrize(
    "text, escaped",
    [("${HOME}", "$${HOME}"), ("%{ if }", "%%{ if }"), ('a"b\\c', 'a\\"b\\\\c'), ("$x", "$x")],
)
def test_nomad_escapes_interpolation(text, escaped):
    assert hcltext.escape(text) == escaped
    _, _, _, task = nomad_task(spec_of(command=["/bin/serve", text], env={"V": text}))
    assert task["config"][0]["args"][-1] == escaped.replace('\\"', '"').replace("\\\\", "\\")
    assert task["env"][0]["V"] == escaped.replace('\\"', '"').replace("\\\\", "\\")


def test_nomad_job_fields():
    spec = spec_of(
        cwd="/srv/m",
        health={"http": "/health", "interval": 5, "start_period": 600, "retries": 4},
        stop={"signal": "SIGINT", "timeout": 60},
        restart={"policy": "on-failure", "max_retries": 3},
        gpus={"count": 2},
    )
    result, job, group, task = nomad_task(spec)
    assert job["type"] == "service"
    assert task["driver"] == "raw_exec"
    config = task["config"][0]
    assert config["command"] == "/bin/sh"
    assert config["args"][:4] == ["-c", nomad.CWD_WRAPPER, "modeld-cwd", "/srv/m"]
    assert config["args"][4:] == ["/bin/serve", "--port", "${NOMAD_PORT_http}"]
    assert task["env"][0]["PORT"] == "${NOMAD_PORT_http}"
    assert task["env"][0]["CUDA_VISIBLE_DEVICES"] == "${NVIDIA_VISIBLE_DEVICES}"
    assert task["kill_signal"] == "SIGINT" and task["kill_timeout"] == "60s"
    assert any("max_kill_timeout" in note for note in result.notes)
    assert task["resources"][0]["device"][0]["nvidia/gpu"]["count"] == 2
    check = group["service"][0]["check"][0]
    assert check["type"] == "http" and check["path"] == "/health"
    assert check["check_restart"][0] == {"limit": 4, "grace": "600s", "ignore_warnings": False}
    assert group["restart"][0]["attempts"] == 3 and group["restart"][0]["mode"] == "fail"
    assert "http" in group["network"][0]["port"][0]


def test_nomad_secrets_come_from_a_variable():
    spec = spec_of(command=["/bin/serve", "--api-key", "k"], env={"HF_TOKEN": "hf_x"})
    result, _, _, task = nomad_task(spec)
    (text,) = result.files.values()
    assert "hf_x" not in text and '"k"' not in text
    assert task["config"][0]["args"][-1] == "${MODELD_SECRET_ARG_2}"
    template = task["template"][0]
    assert template["env"] is True and 'nomadVar "nomad/jobs/m"' in template["data"]
    assert any("nomad var put nomad/jobs/m" in note for note in result.notes)


def test_nomad_kill_timeout_within_the_default_cap_has_no_warning():
    result, _, _, _ = nomad_task(spec_of(stop={"timeout": 30}))
    assert not any("max_kill_timeout" in note for note in result.notes)


# -- systemd -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "arg, quoted",
    [
        ("plain", '"plain"'),
        ("$HOME", '"$$HOME"'),
        ("100%", '"100%%"'),
        (";", "\\;"),
        ('say "hi"', '"say \\"hi\\""'),
        ("a b", '"a b"'),
        ("back\\slash", '"back\\\\slash"'),
    ],
)
def test_systemd_quotes_every_argument(arg, quoted):
    assert systemd.quote(arg) == quoted


@pytest.mark.parametrize(
    "value, written", [("plain", '"plain"'), ("a$b", '"a\\$b"'), ('q"`\\', '"q\\"\\`\\\\"')]
)
def test_systemd_environment_file_values(value, written):
    assert systemd.environment_file_value(value) == written


@pytest.mark.parametrize(
    "restart, expected",
    [
        ({"policy": "no"}, ["Restart=no", "RestartSec=1s"]),
        (
            {"policy": "always", "max_retries": None, "backoff": 3},
            ["Restart=always", "RestartSec=3s", "StartLimitIntervalSec=0"],
        ),
        ({"policy": "on-failure", "max_retries": 4}, ["Restart=on-failure", "StartLimitBurst=5"]),
    ],
)
def test_systemd_restart_rows(restart, expected):
    result = systemd.export(spec_of(restart=restart), common.Options())
    unit = result.files["modeld-m.service"].splitlines()
    for line in expected:
        assert line in unit


def test_systemd_unit_lines_and_losses():
    spec = spec_of(
        stop={"signal": "SIGINT", "timeout": 20},
        health={"http": "/health"},
        gpus={"ids": ["GPU-1", "GPU-2"]},
        env={"API_KEY": "k"},
    )
    result = systemd.export(spec, common.Options())
    unit = result.files["modeld-m.service"].splitlines()
    for line in (
        "KillSignal=SIGINT",
        "TimeoutStopSec=20s",
        "KillMode=control-group",
        "WantedBy=multi-user.target",
        'Environment="CUDA_VISIBLE_DEVICES=GPU-1,GPU-2"',
        "EnvironmentFile=/etc/modeld/m.env",
    ):
        assert line in unit
    assert result.files["m.env"] == 'API_KEY="k"\n'
    assert fields(result) == ["health.http"]
    assert "# unmapped: health.http" in result.files["modeld-m.service"]


# -- every example through each validator ---------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=os.path.basename)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_examples_pass_kubernetes_validate_strict(example, version, tmp_path):
    validate = pytest.importorskip("kubernetes_validate")
    specs_list = source.specs_from_document(read_example(example), os.path.dirname(example))
    options = common.Options(image="registry/model:1", k8s_version=version)
    result = targets.export(specs_list, "kubernetes", options)
    for document in _yaml_documents(result):
        validate.validate(document, version + ".0", strict=True)


def test_the_1_32_schema_refuses_a_stop_signal():
    """The validator is not vacuous: stopSignal is unknown to 1.32 and known to 1.33."""
    validate = pytest.importorskip("kubernetes_validate")
    _, kinds = k8s(spec_of(stop={"signal": "SIGINT"}), k8s_version="1.33")
    validate.validate(kinds["Deployment"], "1.33.0", strict=True)
    with pytest.raises(validate.ValidationError):
        validate.validate(kinds["Deployment"], "1.32.0", strict=True)


@pytest.mark.parametrize("example", EXAMPLES, ids=os.path.basename)
def test_examples_parse_as_nomad_hcl(example):
    spec = source.specs_from_document(read_example(example), os.path.dirname(example))[0]
    result, job, group, task = nomad_task(spec)
    assert task["driver"] == "raw_exec"
    assert task["config"][0]["args"][4:][0] == spec["command"][0]
    assert task["kill_signal"] == spec["stop"]["signal"]


def _systemd_analyze():
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing in CI: tests/run.sh installs it (apt systemd)")
        pytest.skip("systemd-analyze is not installed (apt-get install systemd); CI runs it")
    return found


def _stub(folder, name):
    path = os.path.join(folder, name)
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\nexit 0\n")
    os.chmod(path, stat.S_IRWXU)
    return path


@pytest.mark.parametrize("example", EXAMPLES, ids=os.path.basename)
def test_examples_pass_systemd_analyze_verify(example, tmp_path):
    analyze = _systemd_analyze()
    document = read_example(example)
    # verify checks that ExecStart's program exists: point it at a stub in the temp folder.
    document["command"][0] = _stub(str(tmp_path), os.path.basename(document["command"][0]))
    specs_list = source.specs_from_document(document, os.path.dirname(example))
    options = common.Options(modeld_path=_stub(str(tmp_path), "modeld.pyz"))
    result = targets.export(specs_list, "systemd", options)
    units = []
    for name, text in result.files.items():
        (tmp_path / name).write_text(text)
        if name.endswith(".service"):
            units.append(str(tmp_path / name))
    assert len(units) == 2
    checked = subprocess.run([analyze, "verify"] + units, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == "", checked.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=os.path.basename)
def test_examples_give_a_valid_sbatch_script(example, tmp_path):
    specs_list = source.specs_from_document(read_example(example), os.path.dirname(example))
    result = targets.export(specs_list, "slurm", common.Options())
    ((name, text),) = result.files.items()
    (tmp_path / name).write_text(text)
    checked = subprocess.run(["bash", "-n", str(tmp_path / name)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "#SBATCH --job-name=" in text


def test_slurm_sums_gpus_and_keeps_secrets_out():
    first = spec_of(name="a", gpus={"count": 2}, env={"HF_TOKEN": "hf_x"})
    second = spec_of(name="b", env={"CUDA_VISIBLE_DEVICES": "3"})
    result = slurm.export([first, second], common.Options())
    (text,) = result.files.values()
    assert "#SBATCH --gres=gpu:3" in text
    assert "hf_x" not in text and '"CUDA_VISIBLE_DEVICES"' not in text
    assert fields(result) == ["env.CUDA_VISIBLE_DEVICES"]


def test_the_sbatch_script_runs_modeld_with_srun_stubbed(tmp_path, tag):
    """The modeld part on this machine: srun is a stub that runs its command; the script
    starts the daemon, deploys an HTTP model, waits until it is ready, stops on SIGTERM."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text('#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift; done\nexec "$@"\n')
    srun.chmod(0o755)
    body = {
        "name": "web",
        "command": model("http_model.py", "{port}", tag=tag),
        "port": "auto",
        "health": {"http": "/health", "interval": 0.2, "start_period": 30},
    }
    result = slurm.export([parse_spec(body)], common.Options())
    ((name, text),) = result.files.items()
    script = tmp_path / name
    script.write_text(text)
    home = tmp_path / "home"
    env = dict(
        os.environ,
        PATH="%s:%s" % (bin_dir, os.environ["PATH"]),
        MODELD="%s %s" % (sys.executable, os.path.join(ROOT, "modeld.py")),
        MODELCTL="%s %s" % (sys.executable, os.path.join(ROOT, "modelctl.py")),
        MODELD_HOME=str(home),
        SLURM_JOB_ID="42",
    )
    env.pop("MODELD_HOST", None)
    env.pop("MODELD_TOKEN", None)
    job = subprocess.Popen(
        ["bash", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        line = ""
        for line in job.stdout:
            if "every model is ready" in line:
                break
        assert "every model is ready" in line
        with open(home / "daemon.json") as handle:
            url = json.load(handle)["url"]
        from lib.cli.client import Client

        client = Client(url, (home / "token").read_text().strip())
        assert client.get("web")["ready"] is True
    finally:
        job.terminate()
        job.wait(timeout=120)
        job.stdout.close()
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "modeld.py"), "stop", "--home", str(home), "--models"],
        capture_output=True,
        timeout=120,
    )


# -- modelctl export and the route -----------------------------------------------------


def test_modelctl_export_exits_7_and_lists_what_is_unmapped(tmp_path, capsys):
    spec_file = tmp_path / "m.json"
    spec_file.write_text(
        json.dumps({"name": "m", "command": ["/bin/x"], "restart": {"policy": "no"}})
    )
    code = modelctl.main(["export", "-f", str(spec_file), "--to", "kubernetes", "--image", "i:1"])
    captured = capsys.readouterr()
    assert code == 7
    assert "unmapped: restart.policy" in captured.err
    assert 'kind: "Deployment"' in captured.out
    code = modelctl.main(
        ["export", "-f", str(spec_file), "--to", "kubernetes", "--image", "i:1", "--strict"]
    )
    captured = capsys.readouterr()
    assert code == 7 and captured.out == "" and "refused (--strict)" in captured.err


def test_modelctl_export_writes_a_folder_with_secrets_private(tmp_path, capsys):
    spec_file = tmp_path / "m.json"
    spec_file.write_text(json.dumps({"name": "m", "command": ["/bin/x"], "env": {"API_KEY": "k"}}))
    out = tmp_path / "out"
    code = modelctl.main(["export", "-f", str(spec_file), "--to", "systemd", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["m.env", "modeld-m.service", "modeld.service"]
    assert stat.S_IMODE(os.stat(out / "m.env").st_mode) == 0o600


def test_an_apply_file_exports_every_model_with_defaults(tmp_path):
    document = {
        "set": "prod",
        "defaults": {"restart": {"policy": "always", "max_retries": None}},
        "models": [
            {"name": "a", "command": ["/bin/a"], "gpus": {"count": 1}},
            {"name": "b", "command": ["/bin/b"], "cwd": "sub"},
        ],
    }
    specs_list = source.specs_from_document(document, str(tmp_path))
    assert [s["restart"]["policy"] for s in specs_list] == ["always", "always"]
    assert specs_list[0]["gpus"]["count"] == 1
    assert specs_list[1]["cwd"] == str(tmp_path / "sub")
    result = targets.export(specs_list, "nomad", common.Options())
    assert sorted(result.files) == ["a.nomad.hcl", "b.nomad.hcl"]


def test_the_export_route_masks_secrets_and_validates_its_query(api, tag):
    body = {"name": "q.5", "command": model("sleeper.py", tag=tag), "env": {"HF_TOKEN": "hf_x"}}
    api.post_json("/models", body, status=201)
    try:
        answer = api.get("/models/q.5/export", {"to": "kubernetes", "image": "i:1"}).json
        assert answer["target"] == "kubernetes" and answer["renames"][0]["to"] == "q-5"
        text = "".join(answer["files"].values())
        assert "hf_x" not in text and '"***"' in text
        assert any("fill in Secret" in note for note in answer["notes"])
        assert (
            api.get("/models/q.5/export", {"to": "helm"}, status=400).json["error"]["details"][
                "field"
            ]
            == "to"
        )
        assert (
            api.get("/models/q.5/export", {"to": "kubernetes"}, status=400).json["error"][
                "details"
            ]["field"]
            == "image"
        )
        api.get("/models/nope/export", {"to": "nomad"}, status=404)
    finally:
        api.delete("/models/q.5", {"timeout": 5})
