"""template.yml and policies/ agree with the fc3 schema and with the code.

* every fc3 resource's props validate against the Serverless Devs fc3 JSON schema
  (``../shared/serverless-devs/fc3-props.schema.json``), also with unknown keys refused;
* handlers resolve to callables, ``KCGUARD_*`` variables are Settings fields, and the
  template's default environment is a valid Settings;
* the EventBridge rule is derived from ``SUPPORTED_EVENTS`` and delivers exactly the
  samples of ``events/`` marked ``match`` (matched by ``eventbridge_pattern``, tested here);
* the RAM policy holds exactly the actions of ``client.OPERATIONS`` and
  ``client.ASSOCIATED_RAM_ACTIONS``, cluster-scoped where the API allows it.
"""

from __future__ import annotations

import copy
import importlib
import importlib.machinery
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import SecretStr

from kubeconfig_guard.client import ASSOCIATED_RAM_ACTIONS, OPERATIONS
from kubeconfig_guard.events import ACTED_ON_TYPES, SUPPORTED_EVENTS
from kubeconfig_guard.settings import Settings
from kubeconfig_guard.summary.options import parse_summary_event

try:
    from eventbridge_pattern import PatternError, matches, validate
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.eventbridge_pattern import PatternError, matches, validate

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yml"
SCHEMA_PATH = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "serverless-devs" / "fc3-props.schema.json"
)
EVENTS = ROOT / "events"
POLICIES = ROOT / "policies"
POLICY = POLICIES / "kcguard-least-privilege.json"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

EVENT_HANDLER = "kubeconfig_guard.handlers.event_handler"
SUMMARY_HANDLER = "kubeconfig_guard.handlers.summary_handler"
# The options the daily summary takes from its timer payload.
SUMMARY_PAYLOAD_KEYS = {"regions", "dryRun", "remediate", "expiringDays"}
# Regions where RAM/IMS ActionTrail events reach EventBridge (China site, international site).
RAM_EVENT_REGIONS = {"cn-hangzhou", "ap-southeast-1"}
PLACEHOLDER_ACCOUNT_ID = "123456789012"
CLUSTER_RESOURCE = "acs:cs:*:*:cluster/*"


# --- resolving Serverless Devs variables ---------------------------------------------

_EXPRESSION = re.compile(r"\$\{([^}]*)\}")
_ENV = re.compile(r"""^env\(\s*(['"])(\w+)\1\s*(?:,\s*(['"])(.*?)\3\s*)?\)$""")
_CONFIG = re.compile(r"""^config\(\s*(['"])(\w+)\1\s*\)$""")


def _evaluate(expression: str, variables: dict[str, Any], env: dict[str, str]) -> Any:
    if match := _ENV.match(expression):
        name, default = match.group(2), match.group(4)
        if name in env:
            return env[name]
        return default if default is not None else f"placeholder-{name}"
    if match := _CONFIG.match(expression):
        return {"AccountID": PLACEHOLDER_ACCOUNT_ID}[match.group(2)]
    if expression.startswith("vars."):
        value: Any = variables
        for part in expression.split(".")[1:]:
            assert isinstance(value, dict) and part in value, f"${{{expression}}}: no such variable"
            value = value[part]
        return value
    raise AssertionError(f"template.yml uses ${{{expression}}}, which this test cannot resolve")


def resolve(value: Any, variables: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    """Substitute ``${vars.x}``, ``${env('NAME'[, 'default'])}`` and ``${config('AccountID')}``.

    ``env`` stands for the deploying shell; names not in it take the template's default,
    so the result never depends on the environment the tests run in.
    """
    env = env or {}
    if isinstance(value, dict):
        return {key: resolve(item, variables, env) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, variables, env) for item in value]
    if isinstance(value, str):
        whole = _EXPRESSION.fullmatch(value.strip())
        if whole:
            return _evaluate(whole.group(1).strip(), variables, env)
        return _EXPRESSION.sub(lambda m: str(_evaluate(m.group(1).strip(), variables, env)), value)
    return value


def load_template(env: dict[str, str] | None = None) -> dict[str, Any]:
    raw = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    variables = resolve(raw.get("vars") or {}, {}, env)
    return resolve({k: v for k, v in raw.items() if k != "vars"}, variables, env) | {"vars": variables}


@pytest.fixture(scope="module")
def raw_template() -> dict[str, Any]:
    return yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def fc3_resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r["props"] for name, r in template["resources"].items() if r.get("component") == "fc3"}


def function_with_handler(template: dict[str, Any], handler: str) -> dict[str, Any]:
    found = [props for props in fc3_resources(template).values() if props.get("handler") == handler]
    assert len(found) == 1, f"expected one function with handler {handler}, found {len(found)}"
    return found[0]


def load_build_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("kcguard_build_script", str(ROOT / "scripts" / "build"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


# --- the template against the fc3 schema --------------------------------------------


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with ``additionalProperties: false`` wherever it lists properties and is silent.

    The published schema accepts any extra key, so a misspelt prop would pass unnoticed.
    """
    result = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(result)
    return result


def test_template_is_serverless_devs_3_with_two_fc3_functions(template: dict[str, Any]) -> None:
    assert str(template["edition"]) == "3.0.0"
    assert all(r.get("component") == "fc3" for r in template["resources"].values())
    handlers = sorted(props["handler"] for props in fc3_resources(template).values())
    assert handlers == [EVENT_HANDLER, SUMMARY_HANDLER]
    names = [props["functionName"] for props in fc3_resources(template).values()]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("runtime", ["python3.10", "python3.12"])
def test_every_fc3_resource_validates_against_the_schema(schema: dict[str, Any], runtime: str) -> None:
    template = load_template({"KCGUARD_RUNTIME": runtime})
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    for name, props in fc3_resources(template).items():
        assert props["runtime"] == runtime
        for candidate in (schema, strict(schema)):
            errors = sorted(validator_class(candidate).iter_errors(props), key=lambda e: list(e.path))
            assert not errors, f"{name}: " + "; ".join(
                f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors
            )


def test_each_trigger_config_matches_its_own_definition(
    template: dict[str, Any], schema: dict[str, Any]
) -> None:
    # ITrigger.triggerConfig is an anyOf of every trigger kind: check against the right one.
    definition = {"eventbridge": "IEventBridge", "timer": "ITimerTriggerConfig"}
    validator_class = jsonschema.validators.validator_for(schema)
    strict_schema = strict(schema)
    seen = set()
    for name, props in fc3_resources(template).items():
        for trigger in props.get("triggers", []):
            kind = trigger["triggerType"]
            assert kind in definition, f"{name}: no check for trigger type {kind}"
            seen.add(kind)
            sub = {"$ref": f"#/definitions/{definition[kind]}", "definitions": strict_schema["definitions"]}
            validator_class(sub).validate(trigger["triggerConfig"])
    assert seen == set(definition)


def test_log_config_is_auto(template: dict[str, Any]) -> None:
    for props in fc3_resources(template).values():
        assert props["logConfig"] == "auto"


def test_functions_run_where_ram_events_arrive(template: dict[str, Any]) -> None:
    regions = {props["region"] for props in fc3_resources(template).values()}
    assert regions == {template["vars"]["region"]}
    assert template["vars"]["region"] in RAM_EVENT_REGIONS


def test_code_is_the_build_output_of_the_runtime() -> None:
    build = load_build_script()
    for runtime in build.RUNTIMES:
        template = load_template({"KCGUARD_RUNTIME": runtime})
        for props in fc3_resources(template).values():
            assert props["code"] == f"./dist/{build.zip_name(runtime)}"
    assert load_template()["vars"]["runtime"] == "python3.10"


def test_role_comes_from_a_variable(raw_template: dict[str, Any], template: dict[str, Any]) -> None:
    for name, resource in raw_template["resources"].items():
        assert resource["props"]["role"] == "${vars.role}", name
    role = template["vars"]["role"]
    assert role, "the role variable needs a default"
    # fc3 accepts an ARN or a role name of the deploying account.
    assert re.fullmatch(r"acs:ram::\d+:role/[\w.@-]+|[\w.@-]+", role)


# --- the template against the code ---------------------------------------------------


def test_handlers_resolve_to_callables(template: dict[str, Any]) -> None:
    for props in fc3_resources(template).values():
        module_name, _, attribute = props["handler"].rpartition(".")
        module = importlib.import_module(module_name)
        handler = getattr(module, attribute, None)
        assert callable(handler), f"{props['handler']} is not a callable of {module_name}"


SETTINGS_VARIABLES = {f"KCGUARD_{name.upper()}" for name in Settings.model_fields}
SECRET_VARIABLES = {
    f"KCGUARD_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if "SecretStr" in str(field.annotation)
}


def test_environment_variables_are_settings(template: dict[str, Any]) -> None:
    for name, props in fc3_resources(template).items():
        env = props["environmentVariables"]
        unknown = {key for key in env if key.startswith("KCGUARD_")} - SETTINGS_VARIABLES
        assert not unknown, f"{name}: not Settings fields: {sorted(unknown)}"
        assert all(isinstance(value, str) for value in env.values())


@pytest.mark.parametrize("handler", [EVENT_HANDLER, SUMMARY_HANDLER])
def test_default_environment_is_valid_and_dry_run(
    template: dict[str, Any], handler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = function_with_handler(template, handler)["environmentVariables"]
    for key in SETTINGS_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.dry_run, "the first deploy must be dry-run"
    for key in SECRET_VARIABLES & env.keys():
        secret = getattr(settings, key.removeprefix("KCGUARD_").lower())
        assert secret is None or secret.get_secret_value() == "", f"{key} has a default value"


def test_enforce_is_one_variable_away() -> None:
    template = load_template({"KCGUARD_MODE": "enforce"})
    for props in fc3_resources(template).values():
        assert props["environmentVariables"]["KCGUARD_MODE"] == "enforce"


def test_event_function_settings(template: dict[str, Any]) -> None:
    env = function_with_handler(template, EVENT_HANDLER)["environmentVariables"]
    for key in (
        "KCGUARD_MODE",
        "KCGUARD_REGIONS",
        "KCGUARD_PROTECTED_PRINCIPALS",
        "KCGUARD_MAX_REVOCATIONS",
        "KCGUARD_FORCE_ON_DELETE",
        "KCGUARD_FORCE_ON_LOCK",
    ):
        assert key in env, key
    assert not SECRET_VARIABLES & env.keys(), "the event function sends no chat messages"


def test_summary_function_settings(template: dict[str, Any]) -> None:
    env = function_with_handler(template, SUMMARY_HANDLER)["environmentVariables"]
    for key in ("KCGUARD_REMEDIATE_DELETED", "KCGUARD_REMEDIATE_LOCKED", "KCGUARD_REPORT_BUCKET"):
        assert key in env, key
    assert env.keys() >= SECRET_VARIABLES, "every webhook setting can be set at deploy time"


def test_shared_settings_are_the_same_in_both_functions(raw_template: dict[str, Any]) -> None:
    envs = [r["props"]["environmentVariables"] for r in raw_template["resources"].values()]
    shared = set.intersection(*(set(env) for env in envs))
    assert "KCGUARD_MODE" in shared
    for key in shared:
        assert len({env[key] for env in envs}) == 1, f"{key} differs between the functions"


def test_secrets_only_come_from_the_deploying_shell(raw_template: dict[str, Any]) -> None:
    for resource in raw_template["resources"].values():
        for key, value in resource["props"]["environmentVariables"].items():
            if key in SECRET_VARIABLES:
                assert value == f"${{env('{key}', '')}}", f"{key} must be ${{env('{key}', '')}}"
    assert "http" not in json.dumps(raw_template.get("vars", {})).lower(), "no URL defaults in vars"


def test_secret_detection_sees_the_webhooks() -> None:
    assert {"KCGUARD_DINGTALK_WEBHOOK", "KCGUARD_SLACK_WEBHOOK", "KCGUARD_WEBHOOK_URL"} <= SECRET_VARIABLES
    assert all(
        "SecretStr" in str(Settings.model_fields[k.removeprefix("KCGUARD_").lower()].annotation)
        for k in SECRET_VARIABLES
    )
    assert SecretStr  # the annotation the detection looks for


# --- the event function's trigger and invocation ---------------------------------------


def event_trigger(template: dict[str, Any]) -> dict[str, Any]:
    triggers = function_with_handler(template, EVENT_HANDLER)["triggers"]
    assert [t["triggerType"] for t in triggers] == ["eventbridge"]
    return triggers[0]


def event_pattern(template: dict[str, Any]) -> dict[str, Any]:
    pattern = json.loads(event_trigger(template)["triggerConfig"]["eventRuleFilterPattern"])
    validate(pattern)
    return pattern


def test_eventbridge_trigger_listens_on_the_default_bus_asynchronously(template: dict[str, Any]) -> None:
    config = event_trigger(template)["triggerConfig"]
    assert config["triggerEnable"] is True
    assert config["asyncInvocationType"] is True
    assert config["eventSourceConfig"]["eventSourceType"] == "Default"
    assert config["eventSinkConfig"]["deliveryOption"]["eventSchema"] == "CloudEvents"
    assert config["runOptions"]["mode"] == "event-driven"
    # The schema leaves these two open; the FC API (2023-03-30) defines their fields.
    assert set(config["runOptions"]) <= {
        "mode",
        "maximumTasks",
        "errorsTolerance",
        "retryStrategy",
        "deadLetterQueue",
        "batchWindow",
    }
    assert set(config["eventSinkConfig"]["deliveryOption"]) <= {"eventSchema", "concurrency"}
    assert set(config["runOptions"].get("retryStrategy", {})) <= {
        "PushRetryStrategy",
        "MaximumEventAgeInSeconds",
        "MaximumRetryAttempts",
    }


def _normalised(pattern: dict[str, Any]) -> dict[str, Any]:
    def norm(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return sorted(json.dumps(item, sort_keys=True) for item in value)
        return value

    return norm(pattern)


def test_pattern_is_derived_from_the_supported_events(template: dict[str, Any]) -> None:
    expected = {
        "source": sorted({f"acs.{event.service.lower()}" for event in SUPPORTED_EVENTS}),
        "type": [{"suffix": suffix} for suffix in ACTED_ON_TYPES],
        "data": {"eventName": sorted({event.event_name for event in SUPPORTED_EVENTS})},
    }
    assert _normalised(event_pattern(template)) == _normalised(expected)


def sample_index() -> list[dict[str, str]]:
    return json.loads((EVENTS / "index.json").read_text(encoding="utf-8"))["samples"]


def test_every_sample_is_in_the_index() -> None:
    indexed = {sample["file"] for sample in sample_index()}
    on_disk = {path.name for path in EVENTS.glob("*.json")} - {"index.json"}
    assert indexed == on_disk
    assert {sample["eventbridge"] for sample in sample_index()} <= {"match", "no-match", "n/a"}


EVENTBRIDGE_SAMPLES = [s for s in sample_index() if s["eventbridge"] != "n/a"]


@pytest.mark.parametrize(
    ("file", "expected"), [(s["file"], s["eventbridge"]) for s in EVENTBRIDGE_SAMPLES], ids=str
)
def test_pattern_delivers_exactly_the_matching_samples(
    template: dict[str, Any], file: str, expected: str
) -> None:
    event = json.loads((EVENTS / file).read_text(encoding="utf-8"))
    assert matches(event_pattern(template), event) is (expected == "match")


def test_samples_cover_both_outcomes() -> None:
    assert {"match", "no-match"} <= {s["eventbridge"] for s in EVENTBRIDGE_SAMPLES}


def test_event_function_retries_and_shares_instances(template: dict[str, Any]) -> None:
    props = function_with_handler(template, EVENT_HANDLER)
    assert props["instanceConcurrency"] > 1
    config = props["asyncInvokeConfig"]
    assert config["maxAsyncRetryAttempts"] >= 1
    assert config["maxAsyncEventAgeInSeconds"] >= 3600
    assert props["timeout"] <= config["maxAsyncEventAgeInSeconds"]


# --- the summary's timer ---------------------------------------------------------------

_CRON_FIELD = re.compile(
    r"^(\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?(/\d+)?|\*/\d+)(,[0-9A-Za-z]+(-[0-9A-Za-z]+)?)*$"
)


def summary_timer(template: dict[str, Any]) -> dict[str, Any]:
    triggers = function_with_handler(template, SUMMARY_HANDLER)["triggers"]
    assert [t["triggerType"] for t in triggers] == ["timer"]
    return triggers[0]["triggerConfig"]


def test_summary_cron_has_six_utc_fields(template: dict[str, Any]) -> None:
    cron = summary_timer(template)["cronExpression"]
    assert "CRON_TZ" not in cron and "TZ=" not in cron
    fields = cron.split()
    assert len(fields) == 6, f"{cron!r}: Function Compute wants second minute hour day month weekday"
    assert all(_CRON_FIELD.match(field) for field in fields), cron
    second, minute, hour = fields[:3]
    assert second.isdigit() and minute.isdigit() and hour.isdigit(), "once a day at a fixed time"
    assert summary_timer(template)["enable"] is True


def test_summary_payload_is_json_the_summary_accepts(template: dict[str, Any]) -> None:
    raw = summary_timer(template)["payload"]
    # What Function Compute hands the summary function for this trigger.
    options = parse_summary_event(
        {"triggerTime": "2026-11-25T01:00:00Z", "triggerName": "daily", "payload": raw}
    )
    payload = json.loads(raw)
    assert options.model_dump(by_alias=True, exclude_none=True) == payload
    assert isinstance(payload, dict)
    assert set(payload) <= SUMMARY_PAYLOAD_KEYS, f"unknown keys {set(payload) - SUMMARY_PAYLOAD_KEYS}"
    if "expiringDays" in payload:
        assert isinstance(payload["expiringDays"], int) and payload["expiringDays"] >= 0
    for flag in ("dryRun", "remediate"):
        if flag in payload:
            assert isinstance(payload[flag], bool)
    if "regions" in payload:
        assert isinstance(payload["regions"], list) and all(isinstance(r, str) for r in payload["regions"])


def test_summary_runs_one_at_a_time(template: dict[str, Any]) -> None:
    assert function_with_handler(template, SUMMARY_HANDLER)["instanceConcurrency"] == 1


# --- the RAM policy --------------------------------------------------------------------


def load_policy(path: Path) -> dict[str, Any]:
    policy = json.loads(path.read_text(encoding="utf-8"))
    assert policy["Version"] == "1"
    return policy


def statements(policy: dict[str, Any]) -> Iterator[tuple[list[str], list[str]]]:
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert set(statement) <= {"Effect", "Action", "Resource", "Condition"}
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        yield actions, resources


def test_policy_grants_exactly_what_the_code_calls() -> None:
    granted = [action for actions, _ in statements(load_policy(POLICY)) for action in actions]
    expected = {op.ram_action for op in OPERATIONS} | {
        action for actions in ASSOCIATED_RAM_ACTIONS.values() for action in actions
    }
    assert len(granted) == len(set(granted)), "an action is granted twice"
    assert set(granted) == expected


def test_no_wildcard_in_any_action() -> None:
    for path in POLICIES.glob("kcguard-*.json"):
        for actions, _ in statements(load_policy(path)):
            assert not [a for a in actions if "*" in a], f"{path.name}: wildcard action"


def test_cluster_operations_are_scoped_to_clusters() -> None:
    # Operations addressed to a cluster (a {ClusterId} in their path) support resource-level
    # authorization; the listings (DescribeClustersV1, ram:List*) only work on "*".
    cluster_scoped = {op.ram_action for op in OPERATIONS if "{ClusterId}" in op.path}
    assert cluster_scoped == {"cs:ListClusterKubeconfigStates", "cs:CleanClusterUserPermissions"}
    for actions, resources in statements(load_policy(POLICY)):
        scoped = set(actions) & cluster_scoped
        if scoped:
            assert scoped == set(actions), "cluster-scoped and account-wide actions share a statement"
            assert resources == [CLUSTER_RESOURCE]
        else:
            assert resources == ["*"]


def test_optional_policies_and_trust_policy() -> None:
    report = [
        a
        for actions, _ in statements(load_policy(POLICIES / "kcguard-optional-report-oss.json"))
        for a in actions
    ]
    assert report == ["oss:PutObject"]
    trust = load_policy(POLICIES / "fc-trust-policy.json")
    assert [s["Principal"]["Service"] for s in trust["Statement"]] == [["fc.aliyuncs.com"]]
    assert [s["Action"] for s in trust["Statement"]] == ["sts:AssumeRole"]


def test_deploy_guide_uses_every_policy_file() -> None:
    guide = DEPLOY_DOC.read_text(encoding="utf-8")
    for path in POLICIES.glob("*.json"):
        assert f"policies/{path.name}" in guide, f"docs/deploy.md does not mention policies/{path.name}"
    assert "s deploy -t template.yml" in guide
    # every deploy-time variable of the template is documented
    names = set(
        re.findall(
            r"\$\{env\(\s*['\"](\w+)['\"]", json.dumps(yaml.safe_load(TEMPLATE.read_text(encoding="utf-8")))
        )
    )
    assert names and not [n for n in sorted(names) if f"`{n}`" not in guide and f"{n}=" not in guide]


# --- eventbridge_pattern: the matcher the trigger test relies on ---------------------

EVENT = {
    "source": "acs.ram",
    "type": "ram:ActionTrail:ApiCall",
    "count": 300,
    "flag": True,
    "nothing": None,
    "empty": "",
    "tags": ["blue", "green"],
    "data": {"eventName": "DeleteUser", "requestParameters": {"UserName": "alice"}, "ip": "10.0.0.7"},
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # exact values: a list is OR, keys are AND, case matters, numbers by JSON text
        ({"source": ["acs.ram"]}, True),
        ({"source": ["acs.ims", "acs.ram"]}, True),
        ({"source": ["acs.RAM"]}, False),
        ({"source": ["acs.ram"], "type": ["ram:ActionTrail:ConsoleOperation"]}, False),
        ({"count": [300]}, True),
        ({"count": [300.0]}, False),
        ({"count": ["300"]}, False),
        ({"flag": [True]}, True),
        ({"flag": [1]}, False),
        ({"nothing": [None]}, True),
        ({"empty": [""]}, True),
        ({"tags": ["green"]}, True),
        ({"tags": ["red"]}, False),
        ({"absent": ["x"]}, False),
        # prefix
        ({"source": [{"prefix": "acs."}]}, True),
        ({"source": [{"prefix": "ram"}]}, False),
        ({"count": [{"prefix": "3"}]}, False),
        ({"absent": [{"prefix": ""}]}, False),
        # suffix
        ({"type": [{"suffix": ":ActionTrail:ApiCall"}]}, True),
        ({"type": [{"suffix": ":ActionTrail:ConsoleOperation"}, {"suffix": ":ApiCall"}]}, True),
        ({"type": [{"suffix": ":AliyunServiceEvent"}]}, False),
        ({"absent": [{"suffix": ""}]}, False),
        # contains
        ({"type": [{"contains": "ActionTrail"}]}, True),
        ({"type": [{"contains": "actiontrail"}]}, False),
        # anything-but
        ({"source": [{"anything-but": "acs.ecs"}]}, True),
        ({"source": [{"anything-but": "acs.ram"}]}, False),
        ({"source": [{"anything-but": ["acs.ecs", "acs.ram"]}]}, False),
        ({"count": [{"anything-but": 301}]}, True),
        ({"count": [{"anything-but": [300]}]}, False),
        ({"type": [{"anything-but": {"prefix": "ecs:"}}]}, True),
        ({"type": [{"anything-but": {"prefix": "ram:"}}]}, False),
        ({"type": [{"anything-but": {"suffix": ":ApiCall"}}]}, False),
        ({"absent": [{"anything-but": "x"}]}, False),
        ({"tags": [{"anything-but": "blue"}]}, True),
        # exists
        ({"source": [{"exists": True}]}, True),
        ({"source": [{"exists": False}]}, False),
        ({"absent": [{"exists": False}]}, True),
        ({"absent": [{"exists": True}]}, False),
        ({"nothing": [{"exists": True}]}, True),
        # numeric and cidr
        ({"count": [{"numeric": [">", 0, "<=", 300]}]}, True),
        ({"count": [{"numeric": [">", 300]}]}, False),
        ({"count": [{"numeric": ["=", 300]}]}, True),
        ({"source": [{"numeric": [">", 0]}]}, False),
        ({"data": {"ip": [{"cidr": "10.0.0.0/24"}]}}, True),
        ({"data": {"ip": [{"cidr": "10.0.1.0/24"}]}}, False),
        # nested fields
        ({"data": {"eventName": ["DeleteUser"]}}, True),
        ({"data": {"eventName": ["DeleteRole"]}}, False),
        ({"data": {"requestParameters": {"UserName": ["alice"]}}}, True),
        ({"data": {"requestParameters": {"UserName": [{"prefix": "bob"}]}}}, False),
        ({"data": {"requestParameters": {"RoleName": ["alice"]}}}, False),
        ({"data": {"errorCode": [{"exists": False}]}}, True),
        ({"missing": {"deeper": ["x"]}}, False),
        ({"missing": {"deeper": [{"exists": False}]}}, True),
        ({"source": {"nested": ["x"]}}, False),
        (
            {"source": ["acs.ram"], "data": {"eventName": ["DeleteUser"]}, "type": [{"suffix": "ApiCall"}]},
            True,
        ),
        ({}, True),
    ],
)
def test_matcher(pattern: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, EVENT) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        {"source": "acs.ram"},
        {"source": []},
        {"source": [{"wildcard": "acs.*"}]},
        {"source": [{"prefix": "a", "suffix": "b"}]},
        {"source": [{"prefix": 1}]},
        {"source": [{"anything-but": {"contains": "x"}}]},
        {"source": [{"anything-but": []}]},
        {"source": [{"exists": "yes"}]},
        {"count": [{"numeric": [">"]}]},
        {"count": [{"numeric": ["~", 1]}]},
        {"ip": [{"cidr": "not-a-network"}]},
        {"data": {"eventName": "DeleteUser"}},
        ["source"],
    ],
)
def test_invalid_patterns_are_rejected(pattern: Any) -> None:
    with pytest.raises(PatternError):
        validate(pattern)
