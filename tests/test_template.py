"""template.yml, policies/ and docs/deploy.md agree with the fc3 schema, FC 3.0 and the code.

* every fc3 resource's props validate against the Serverless Devs fc3 JSON schema
  (``../shared/serverless-devs/fc3-props.schema.json``; skipped with the reason on a clone
  without ``../shared``, required under ``KCGUARD_REQUIRE_SHARED=1`` as in CI), also with
  unknown keys refused;
* FC 3.0's rules: no instance concurrency on a standard runtime, explicit vCPU/memory/disk
  in FC's steps and ratio, the event function's burst bounded by its reserved concurrency;
* handlers resolve to callables, ``KCGUARD_*`` variables are Settings fields, and the
  template's default environment is a valid Settings;
* the EventBridge rule is derived from ``SUPPORTED_EVENTS`` and delivers exactly the
  samples of ``events/`` marked ``match`` (matched by ``eventbridge_pattern``, tested here);
* each function has its own RAM role and policy, holding exactly the actions of the
  operations that function calls (``api.OPERATIONS``: each operation's ``ram_actions``,
  checked by running each handler against the fake), cluster-scoped where the API allows it;
* docs/deploy.md states the sizes the template sets and what it asks of the deployer.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
import re
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import SecretStr

from kubeconfig_guard.api import OPERATIONS
from kubeconfig_guard.channels import CHANNELS
from kubeconfig_guard.events import ACTED_ON_TYPES, SUPPORTED_EVENTS, eventbridge_pattern
from kubeconfig_guard.handlers import handle_event, handle_summary
from kubeconfig_guard.settings import Settings
from kubeconfig_guard.summary.options import parse_summary_event

try:
    from eventbridge_pattern import PatternError, matches, validate
    from outside_files import shared_file
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.eventbridge_pattern import PatternError, matches, validate
    from tests.outside_files import shared_file

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yml"
EVENTS = ROOT / "events"
POLICIES = ROOT / "policies"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

EVENT_HANDLER = "kubeconfig_guard.handlers.event_handler"
SUMMARY_HANDLER = "kubeconfig_guard.handlers.summary_handler"
# The event function's failure destination (notices, issue 18): no role, no trigger.
FAILURE_HANDLER = "kubeconfig_guard.handlers.failure_handler"
# Each function's own role variable and policy file.
FUNCTION_ROLES = {EVENT_HANDLER: "eventRole", SUMMARY_HANDLER: "summaryRole"}
FUNCTION_POLICIES = {EVENT_HANDLER: "kcguard-event.json", SUMMARY_HANDLER: "kcguard-summary.json"}
# The options the daily summary takes from its timer payload.
SUMMARY_PAYLOAD_KEYS = {"regions", "dryRun", "remediate", "expiringDays"}
# Regions where RAM/IMS ActionTrail events reach EventBridge (China site, international site).
RAM_EVENT_REGIONS = {"cn-hangzhou", "ap-southeast-1"}
PLACEHOLDER_ACCOUNT_ID = "123456789012"
CLUSTER_RESOURCE = "acs:cs:*:*:cluster/*"
# The service-linked roles fc3 checks or creates (Resource Management) before every command
# on a function with an EventBridge trigger on the default bus: initSlrRole('SENDTOFC') and
# initSlrRole('DEFAULT') in devsapp/fc3 src/base.ts, service names from
# @serverless-cd/srm-aliyun-ram20150501 src/constant.ts (SOURCE_TYPE); plus fc.aliyuncs.com,
# the role Function Compute ships the functions' logs with.
EVENTBRIDGE_SLR_SERVICES = {
    "sendevent-fc.eventbridge.aliyuncs.com",
    "source-actiontrail.eventbridge.aliyuncs.com",
    "source-cms.eventbridge.aliyuncs.com",
}
FC_SLR_SERVICE = "fc.aliyuncs.com"


# --- resolving Serverless Devs variables ---------------------------------------------

_EXPRESSION = re.compile(r"\$\{([^}]*)\}")
_ENV = re.compile(r"""^env\(\s*(['"])(\w+)\1\s*(?:,\s*(?:(['"])(.*?)\3|(-?\d+(?:\.\d+)?))\s*)?\)$""")
_TIMES_ONE = re.compile(r"^(.*\S)\s*\*\s*1$")
_CONFIG = re.compile(r"""^config\(\s*(['"])(\w+)\1\s*\)$""")


def _number(text: str) -> int | float | None:
    """JavaScript's ``value * 1`` as Serverless Devs evaluates it (JSON null for NaN)."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() else value


def _evaluate(expression: str, variables: dict[str, Any], env: dict[str, str]) -> Any:
    if match := _TIMES_ONE.match(expression):
        value = _evaluate(match.group(1).strip(), variables, env)
        return value if isinstance(value, (int, float)) else _number(str(value))
    if match := _ENV.match(expression):
        name, quoted, numeric = match.group(2), match.group(4), match.group(5)
        if name in env:
            return env[name]  # the environment always gives a string
        if numeric is not None:
            return _number(numeric)
        return quoted if quoted is not None else f"placeholder-{name}"
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
    """Substitute ``${vars.x}``, ``${env('NAME'[, default])}[ * 1]`` and ``${config('AccountID')}``.

    ``env`` stands for the deploying shell; names not in it take the template's default,
    so the result never depends on the environment the tests run in. A value that is one
    whole expression keeps its type, as Serverless Devs' art-template does.
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


def test_resolver_follows_serverless_devs() -> None:
    # Checked against @serverless-devs/art-template 4.13.15 (lib/devs-compile.js), the
    # engine `s` resolves templates with: a whole-value expression keeps its type, env()
    # gives the environment's string, `* 1` makes a number, and NaN becomes JSON null.
    assert resolve("${env('KCG_X', 1)}", {}) == 1
    assert resolve("${env('KCG_X', 1)}", {}, {"KCG_X": "2"}) == "2"
    assert resolve("${env('KCG_X', 1) * 1}", {}, {"KCG_X": "2"}) == 2
    assert resolve("${env('KCG_X', '0.5') * 1}", {}) == 0.5
    assert resolve("${env('KCG_X', 1) * 1}", {}, {"KCG_X": "two"}) is None
    assert resolve("n=${env('KCG_X', 'a')}", {}) == "n=a"
    assert resolve("${vars.x}", {"x": 3}) == 3


@pytest.fixture(scope="module")
def raw_template() -> dict[str, Any]:
    return yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    path = shared_file(
        "serverless-devs/fc3-props.schema.json",
        "the fc3 component's props schema (devsapp/fc3 src/schema.json) that template.yml is validated against",
    )
    return json.loads(path.read_text(encoding="utf-8"))


def fc3_resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r["props"] for name, r in template["resources"].items() if r.get("component") == "fc3"}


def function_with_handler(template: dict[str, Any], handler: str) -> dict[str, Any]:
    found = [props for props in fc3_resources(template).values() if props.get("handler") == handler]
    assert len(found) == 1, f"expected one function with handler {handler}, found {len(found)}"
    return found[0]


def load_build_script() -> ModuleType:
    """scripts/build's runtimes and output names (scripts/buildlib/project.py)."""
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    return importlib.import_module("buildlib.project")


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


def schema_errors(schema: dict[str, Any], props: dict[str, Any]) -> list[str]:
    validator_class = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_class(schema).iter_errors(props), key=lambda e: list(e.path))
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]


def test_template_is_serverless_devs_3_with_three_fc3_functions(template: dict[str, Any]) -> None:
    assert str(template["edition"]) == "3.0.0"
    assert all(r.get("component") == "fc3" for r in template["resources"].values())
    handlers = sorted(props["handler"] for props in fc3_resources(template).values())
    assert handlers == sorted([EVENT_HANDLER, SUMMARY_HANDLER, FAILURE_HANDLER])
    names = [props["functionName"] for props in fc3_resources(template).values()]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("runtime", ["python3.10", "python3.12"])
def test_every_fc3_resource_validates_against_the_schema(schema: dict[str, Any], runtime: str) -> None:
    template = load_template({"KCGUARD_RUNTIME": runtime})
    jsonschema.validators.validator_for(schema).check_schema(schema)
    for name, props in fc3_resources(template).items():
        assert props["runtime"] == runtime
        for candidate in (schema, strict(schema)):
            errors = schema_errors(candidate, props)
            assert not errors, f"{name}: " + "; ".join(errors)


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


# --- FC 3.0: concurrency and sizes ----------------------------------------------------


def instance_concurrency_problems(props: dict[str, Any]) -> list[str]:
    """FC 3.0 runs one invocation per instance on standard runtimes (only custom* share)."""
    runtime = str(props.get("runtime", ""))
    concurrency = props.get("instanceConcurrency")
    if concurrency is not None and concurrency > 1 and not runtime.startswith("custom"):
        return [
            f"instanceConcurrency {concurrency} on {runtime}: standard runtimes run one invocation per instance"
        ]
    return []


def test_no_instance_concurrency_on_a_standard_runtime(raw_template: dict[str, Any]) -> None:
    for runtime in ("python3.10", "python3.12"):
        for name, props in fc3_resources(load_template({"KCGUARD_RUNTIME": runtime})).items():
            assert not instance_concurrency_problems(props), name
    for name, resource in raw_template["resources"].items():
        assert "instanceConcurrency" not in resource["props"], f"{name}: nothing to set on python3.x"
    # the rule itself refuses what template.yml used to say, and allows a custom runtime
    assert instance_concurrency_problems({"runtime": "python3.10", "instanceConcurrency": 20})
    assert not instance_concurrency_problems({"runtime": "custom.debian12", "instanceConcurrency": 20})
    assert not instance_concurrency_problems({"runtime": "python3.12", "instanceConcurrency": 1})


def size_problems(props: dict[str, Any]) -> list[str]:
    """FC 3.0 instance sizes: vCPU 0.05-16 in 0.05 steps, memory 128-32768 MB in 64 MB steps,
    memory (GB) per vCPU from 1 to 4, disk 512 MB or 10 GB.
    (https://www.alibabacloud.com/help/en/fc/instance-types-and-instance-modes)"""
    problems = []
    cpu, memory, disk = props.get("cpu"), props.get("memorySize"), props.get("diskSize")
    if not isinstance(cpu, (int, float)) or isinstance(cpu, bool):
        return [f"cpu {cpu!r} is not set"]
    if not isinstance(memory, int) or isinstance(memory, bool):
        return [f"memorySize {memory!r} is not set"]
    steps = Decimal(str(cpu)) / Decimal("0.05")
    if steps != steps.to_integral_value() or not 0.05 <= cpu <= 16:
        problems.append(f"cpu {cpu}: 0.05 to 16 in steps of 0.05")
    if memory % 64 or not 128 <= memory <= 32768:
        problems.append(f"memorySize {memory}: 128 to 32768 MB in steps of 64")
    ratio = memory / 1024 / cpu
    if not 1 <= ratio <= 4:
        problems.append(f"{memory} MB for {cpu} vCPU is {ratio:.2f} GB per vCPU; FC wants 1 to 4")
    if disk not in (512, 10240):
        problems.append(f"diskSize {disk!r}: 512 or 10240")
    return problems


def test_sizes_are_explicit_and_follow_fc_rules(template: dict[str, Any]) -> None:
    for name, props in fc3_resources(template).items():
        assert not size_problems(props), f"{name}: {size_problems(props)}"
    # the rule refuses what FC refuses
    assert size_problems({"cpu": 0.33, "memorySize": 512, "diskSize": 512})
    assert size_problems({"cpu": 0.1, "memorySize": 512, "diskSize": 512})  # 5 GB per vCPU
    assert size_problems({"cpu": 1, "memorySize": 512, "diskSize": 512})  # 0.5 GB per vCPU
    assert size_problems({"cpu": 0.35, "memorySize": 500, "diskSize": 512})
    assert size_problems({"memorySize": 512, "diskSize": 512})  # fc3 would pick the vCPU


def test_event_function_bursts_queue_on_its_reserved_concurrency(template: dict[str, Any]) -> None:
    props = function_with_handler(template, EVENT_HANDLER)
    reserved = props["concurrencyConfig"]["reservedConcurrency"]
    assert isinstance(reserved, int) and not isinstance(reserved, bool) and reserved >= 1
    assert reserved == template["vars"]["eventReservedConcurrency"]
    # Over the cap, FC retries asynchronous invocations with back-off for up to 5 hours:
    # the async event age must let the queued events wait that long and be retried.
    config = props["asyncInvokeConfig"]
    assert config["maxAsyncRetryAttempts"] >= 1
    assert config["maxAsyncEventAgeInSeconds"] >= 5 * 3600
    assert props["timeout"] <= config["maxAsyncEventAgeInSeconds"]
    # the EventBridge trigger invokes asynchronously, so nothing over the cap is refused outright
    assert event_trigger(template)["triggerConfig"]["asyncInvocationType"] is True


def test_reserved_concurrency_is_one_variable_away() -> None:
    props = function_with_handler(load_template({"KCGUARD_EVENT_RESERVED_CONCURRENCY": "3"}), EVENT_HANDLER)
    assert props["concurrencyConfig"] == {"reservedConcurrency": 3}
    # a value that is not a number reaches fc3 as null (the schema test below refuses it)
    bad = function_with_handler(load_template({"KCGUARD_EVENT_RESERVED_CONCURRENCY": "two"}), EVENT_HANDLER)
    assert bad["concurrencyConfig"]["reservedConcurrency"] is None


def test_the_schema_takes_a_number_for_reserved_concurrency_and_refuses_null(schema: dict[str, Any]) -> None:
    good = function_with_handler(load_template({"KCGUARD_EVENT_RESERVED_CONCURRENCY": "3"}), EVENT_HANDLER)
    assert not schema_errors(strict(schema), good)
    bad = function_with_handler(load_template({"KCGUARD_EVENT_RESERVED_CONCURRENCY": "two"}), EVENT_HANDLER)
    assert [e for e in schema_errors(schema, bad) if e.startswith("concurrencyConfig/reservedConcurrency")]


def test_summary_runs_one_at_a_time(template: dict[str, Any]) -> None:
    props = function_with_handler(template, SUMMARY_HANDLER)
    assert props["concurrencyConfig"] == {"reservedConcurrency": 1}


_SIZE_ROW = re.compile(
    r"^\|\s*`(?P<name>kubeconfig-guard-[a-z]+)`\s*\|\s*(?P<cpu>[\d.]+) vCPU\s*\|\s*(?P<memory>\d+) MB\s*\|"
    r"\s*(?P<disk>\d+) MB\s*\|\s*(?P<timeout>\d+) s\s*\|\s*(?P<reserved>[^|]+?)\s*\|",
    re.MULTILINE,
)


def test_deploy_guide_states_the_sizes_the_template_sets(template: dict[str, Any]) -> None:
    rows = {m["name"]: m for m in _SIZE_ROW.finditer(DEPLOY_DOC.read_text(encoding="utf-8"))}
    assert rows, "docs/deploy.md has no size table (| `name` | vCPU | MB | MB | s | reserved |)"
    for props in fc3_resources(template).values():
        row = rows.get(props["functionName"])
        assert row is not None, f"docs/deploy.md does not size {props['functionName']}"
        assert float(row["cpu"]) == props["cpu"], props["functionName"]
        assert int(row["memory"]) == props["memorySize"], props["functionName"]
        assert int(row["disk"]) == props["diskSize"], props["functionName"]
        assert int(row["timeout"]) == props["timeout"], props["functionName"]
        reserved = str(props["concurrencyConfig"]["reservedConcurrency"])
        assert reserved in row["reserved"], props["functionName"]


# --- roles ----------------------------------------------------------------------------


def test_each_function_has_its_own_role(raw_template: dict[str, Any], template: dict[str, Any]) -> None:
    for handler, variable in FUNCTION_ROLES.items():
        raw = [r["props"] for r in raw_template["resources"].values() if r["props"]["handler"] == handler]
        assert [props["role"] for props in raw] == [f"${{vars.{variable}}}"]
    roles = {variable: template["vars"][variable] for variable in FUNCTION_ROLES.values()}
    assert len(set(roles.values())) == len(roles), "the functions share a default role"
    for role in roles.values():
        # fc3 accepts an ARN or a role name of the deploying account.
        assert re.fullmatch(r"acs:ram::\d+:role/[\w.@-]+|[\w.@-]+", role)
    overridden = load_template({"KCGUARD_EVENT_ROLE": "ev", "KCGUARD_SUMMARY_ROLE": "acs:ram::1:role/su"})
    assert function_with_handler(overridden, EVENT_HANDLER)["role"] == "ev"
    assert function_with_handler(overridden, SUMMARY_HANDLER)["role"] == "acs:ram::1:role/su"
    # no shared fallback: a leftover KCGUARD_ROLE changes nothing
    assert load_template({"KCGUARD_ROLE": "shared"}) == template


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
    # Event notices (issue 18): the summary's chat webhooks, and when to use them.
    assert env.keys() >= CHANNEL_VARIABLES | {"KCGUARD_EVENT_NOTIFY"}
    assert template["vars"]["eventNotify"] == "problems"
    # Organization mode (issue 17): which accounts, and the ExternalId of the member sessions.
    assert env.keys() >= {"KCGUARD_ACCOUNTS", "KCGUARD_MEMBER_ROLE", "KCGUARD_MEMBER_EXTERNAL_ID"}
    assert template["vars"]["accounts"] == "self"


CHANNEL_VARIABLES = {
    f"KCGUARD_{name.upper()}" for c in CHANNELS for name in (c.url_setting, *c.secret_settings)
}


def test_the_notify_function_is_the_failure_destination_and_holds_nothing_else(
    raw_template: dict[str, Any], template: dict[str, Any]
) -> None:
    props = function_with_handler(template, FAILURE_HANDLER)
    raw = next(
        r["props"] for r in raw_template["resources"].values() if r["props"]["handler"] == FAILURE_HANDLER
    )
    # No role: it calls no cloud API, so a forged record can reach nothing but the chat webhooks.
    assert "role" not in raw and "triggers" not in raw
    # Never retried, and no destination of its own: one record, at most one notice, no loop.
    assert props["asyncInvokeConfig"]["maxAsyncRetryAttempts"] == 0
    assert "destinationConfig" not in props["asyncInvokeConfig"]
    env = props["environmentVariables"]
    assert env.keys() >= CHANNEL_VARIABLES | {"KCGUARD_EVENT_NOTIFY", "KCGUARD_MODE"}
    assert not {"KCGUARD_CS_ENDPOINT", "KCGUARD_REGIONS"} & env.keys()


def uncommented(option: str) -> dict[str, Any]:
    """template.yml with the event function's commented failure destination ``option`` turned on."""
    lines = TEMPLATE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"# ({option}) "))
    block = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("# destinationConfig:"))
    for i in range(block, block + 3):
        lines[i] = lines[i].replace("# ", "", 1)
    raw = yaml.safe_load("\n".join(lines))
    variables = resolve(raw.get("vars") or {}, {})
    return resolve({k: v for k, v in raw.items() if k != "vars"}, variables) | {"vars": variables}


@pytest.mark.parametrize("option", ["a", "b"])
def test_each_commented_failure_destination_validates_and_names_its_target(
    schema: dict[str, Any], option: str
) -> None:
    template = uncommented(option)
    props = function_with_handler(template, EVENT_HANDLER)
    for candidate in (schema, strict(schema)):
        assert not schema_errors(candidate, props), schema_errors(candidate, props)
    destination = props["asyncInvokeConfig"]["destinationConfig"]["onFailure"]["destination"]
    region = template["vars"]["region"]
    if option == "a":  # FC 3.0's function ARN (Destination struct: acs:fc:cn-shanghai:xxx:functions/f1)
        notify = function_with_handler(template, FAILURE_HANDLER)["functionName"]
        assert destination == f"acs:fc:{region}:{PLACEHOLDER_ACCOUNT_ID}:functions/{notify}"
    else:
        assert destination.startswith(f"acs:mns:{region}:{PLACEHOLDER_ACCOUNT_ID}:/queues/")


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
    """The rule selects exactly what the code accepts (events.eventbridge_pattern, one table)."""
    expected = eventbridge_pattern()
    assert sorted(expected["source"]) == sorted(
        {f"acs.{event.service.lower()}" for event in SUPPORTED_EVENTS}
    )
    assert expected["type"] == [{"suffix": suffix} for suffix in ACTED_ON_TYPES]
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


# --- the summary's timer ---------------------------------------------------------------

_CRON_FIELD = re.compile(
    r"^(\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?(/\d+)?|\*/\d+)(,[0-9A-Za-z]+(-[0-9A-Za-z]+)?)*$"
)
# FC 3.0 documents the form `CRON_TZ=Asia/Shanghai 0 0 4 1 * *`; without it, UTC.
_CRON_TZ = re.compile(r"^CRON_TZ=[A-Za-z_]+(/[A-Za-z_+-]+)*$")


def cron_problems(cron: str) -> list[str]:
    fields = cron.split()
    if fields and fields[0].startswith("CRON_TZ="):
        if not _CRON_TZ.match(fields[0]):
            return [f"{fields[0]!r} is not CRON_TZ=<Area/City>"]
        fields = fields[1:]
    if len(fields) != 6:
        return [f"{cron!r}: Function Compute wants second minute hour day month weekday"]
    problems = [f"{cron!r}: bad field {field!r}" for field in fields if not _CRON_FIELD.match(field)]
    if not all(field.isdigit() for field in fields[:3]):
        problems.append(f"{cron!r}: once a day at a fixed time")
    return problems


def summary_timer(template: dict[str, Any]) -> dict[str, Any]:
    triggers = function_with_handler(template, SUMMARY_HANDLER)["triggers"]
    assert [t["triggerType"] for t in triggers] == ["timer"]
    return triggers[0]["triggerConfig"]


def test_summary_cron_is_daily_in_utc_by_default(template: dict[str, Any]) -> None:
    cron = summary_timer(template)["cronExpression"]
    assert not cron_problems(cron), cron_problems(cron)
    assert "CRON_TZ" not in cron, "the default stays UTC"
    assert summary_timer(template)["enable"] is True


def test_summary_cron_takes_a_time_zone() -> None:
    shanghai = load_template({"KCGUARD_SUMMARY_CRON": "CRON_TZ=Asia/Shanghai 0 0 9 * * *"})
    assert summary_timer(shanghai)["cronExpression"] == "CRON_TZ=Asia/Shanghai 0 0 9 * * *"
    assert not cron_problems(summary_timer(shanghai)["cronExpression"])
    assert not cron_problems("CRON_TZ=America/Argentina/Buenos_Aires 0 30 6 * * *")
    assert cron_problems("CRON_TZ=Asia Shanghai 0 0 9 * * *")
    assert cron_problems("0 9 * * *")
    assert cron_problems("0 */5 * * * *")


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


# --- the RAM policies --------------------------------------------------------------------


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


def granted(path: Path) -> list[str]:
    return [action for actions, _ in statements(load_policy(path)) for action in actions]


def ram_actions(operation_names: set[str]) -> set[str]:
    """The RAM actions the given ACK operations need (their own and the associated ones)."""
    by_name = {op.name: op for op in OPERATIONS}
    unknown = operation_names - by_name.keys()
    assert not unknown, f"operations missing from api.OPERATIONS: {sorted(unknown)}"
    return {action for name in operation_names for action in by_name[name].ram_actions}


CLUSTER_SCOPED = {op.ram_action for op in OPERATIONS if "{ClusterId}" in op.path}


def expected_policy(operation_names: set[str]) -> dict[str, Any]:
    """The least-privilege policy of a function calling these operations, from the table alone.

    Operations addressed to a cluster (a {ClusterId} in their path) support resource-level
    authorization (acs:cs:{#regionId}:{#accountId}:cluster/{#ClusterId} in the ACK API
    reference); the listings (DescribeClustersV1, ram:List*) only work on "*".
    """
    actions = ram_actions(operation_names)
    scoped = sorted(actions & CLUSTER_SCOPED, key=[op.ram_action for op in OPERATIONS].index)
    cs_listing = sorted(a for a in actions - CLUSTER_SCOPED if a.startswith("cs:"))
    others = sorted(actions - CLUSTER_SCOPED - set(cs_listing))
    statements = [
        {"Effect": "Allow", "Action": group, "Resource": [resource]}
        for group, resource in ((scoped, CLUSTER_RESOURCE), (cs_listing, "*"), (others, "*"))
        if group
    ]
    return {"Version": "1", "Statement": statements}


def canonical_policy(policy: dict[str, Any]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    return sorted((tuple(sorted(a)), tuple(sorted(r))) for a, r in statements(policy))


@pytest.mark.parametrize("handler", FUNCTION_POLICIES)
def test_each_policy_is_derived_from_the_operations_table(handler: str) -> None:
    # Both functions list, read and revoke: the event function on each event, the summary
    # when it remediates (KCGUARD_REMEDIATE_DELETED, on by default).
    policy = load_policy(POLICIES / FUNCTION_POLICIES[handler])
    actions = granted(POLICIES / FUNCTION_POLICIES[handler])
    assert len(actions) == len(set(actions)), "an action is granted twice"
    assert canonical_policy(policy) == canonical_policy(expected_policy({op.name for op in OPERATIONS}))


def test_cluster_operations_are_scoped_to_clusters() -> None:
    assert {"cs:ListClusterKubeconfigStates", "cs:CleanClusterUserPermissions"} == CLUSTER_SCOPED
    for name in FUNCTION_POLICIES.values():
        for actions, resources in statements(load_policy(POLICIES / name)):
            scoped = set(actions) & CLUSTER_SCOPED
            if scoped:
                assert scoped == set(actions), "cluster-scoped and account-wide actions share a statement"
                assert resources == [CLUSTER_RESOURCE]
            else:
                assert resources == ["*"]


def run_event_function(h: Any) -> None:
    event = (EVENTS / "ram-delete-user.json").read_bytes()
    context = SimpleNamespace(account_id=h.backend.to_world().account_id, credentials=None)
    result = handle_event(event, context, runtime=h.runtime(regions=["cn-hangzhou", "ap-southeast-1"]))
    assert result.counts.get("revoked", 0) > 0, result


def run_summary_function(h: Any) -> None:
    context = SimpleNamespace(account_id=h.backend.to_world().account_id, credentials=None)
    timer = {"triggerTime": "2026-11-25T01:00:00Z", "triggerName": "daily", "payload": "{}"}
    outcome = handle_summary(timer, context, runtime=h.runtime(regions=["cn-hangzhou", "ap-southeast-1"]))
    assert sum(outcome.reconciliation.values()) > 0, outcome


@pytest.mark.parametrize(
    ("handler", "run"),
    [(EVENT_HANDLER, run_event_function), (SUMMARY_HANDLER, run_summary_function)],
    ids=["event", "summary"],
)
def test_each_policy_grants_exactly_what_its_function_calls(
    make_harness: Any, demo_env: None, handler: str, run: Any
) -> None:
    # The real handler, in enforce mode, against the fake over its wire protocol: the
    # operations it calls are the ones its role must allow, and nothing else.
    h = make_harness()
    run(h)
    called = {operation for operation, count in h.backend.calls.items() if count}
    assert set(granted(POLICIES / FUNCTION_POLICIES[handler])) == ram_actions(called)


def test_no_wildcard_in_any_action() -> None:
    for path in POLICIES.glob("kcguard-*.json"):
        for actions, _ in statements(load_policy(path)):
            assert not [a for a in actions if "*" in a], f"{path.name}: wildcard action"


def test_optional_policies_and_trust_policy() -> None:
    # PutObject for the reports and the deferral ledger; GetObject for the ledger only.
    assert sorted(granted(POLICIES / "kcguard-optional-report-oss.json")) == [
        "oss:GetObject",
        "oss:PutObject",
    ]
    assert granted(POLICIES / "kcguard-optional-failure-destination-mns.json") == ["mns:SendMessage"]
    # fc:InvokeFunction has no resource-level authorization in FC 3.0 (its API reference: "All
    # Resources"): docs/deploy.md says what granting it means.
    assert list(statements(load_policy(POLICIES / "kcguard-optional-failure-destination-fc.json"))) == [
        (["fc:InvokeFunction"], ["*"])
    ]
    trust = load_policy(POLICIES / "fc-trust-policy.json")
    assert [s["Principal"]["Service"] for s in trust["Statement"]] == [["fc.aliyuncs.com"]]
    assert [s["Action"] for s in trust["Statement"]] == ["sts:AssumeRole"]


def test_deployer_policy_passes_only_the_two_roles_and_creates_only_the_needed_slrs(
    template: dict[str, Any],
) -> None:
    policy = load_policy(POLICIES / "kcguard-deployer.json")
    by_action = {tuple(s["Action"]): s for s in policy["Statement"]}
    assert set(by_action) == {("ram:PassRole",), ("ram:CreateServiceLinkedRole",)}
    passrole = by_action[("ram:PassRole",)]
    roles = {template["vars"][variable] for variable in FUNCTION_ROLES.values()}
    assert set(passrole["Resource"]) == {f"acs:ram:*:*:role/{role}" for role in roles}
    assert passrole["Condition"] == {"StringEquals": {"acs:Service": "fc.aliyuncs.com"}}
    slr = by_action[("ram:CreateServiceLinkedRole",)]
    services = set(slr["Condition"]["StringEquals"]["ram:ServiceName"])
    assert services == EVENTBRIDGE_SLR_SERVICES | {FC_SLR_SERVICE}


# --- docs/deploy.md --------------------------------------------------------------------


def deploy_guide() -> str:
    return DEPLOY_DOC.read_text(encoding="utf-8")


def test_deploy_guide_uses_every_policy_file() -> None:
    guide = deploy_guide()
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


def test_deploy_guide_never_suggests_full_ack_access_without_saying_what_it_grants() -> None:
    guide = deploy_guide()
    assert "--PolicyName AliyunCSFullAccess" not in guide, "no command attaches AliyunCSFullAccess"
    if "AliyunCSFullAccess" in guide:
        assert "DeleteCluster" in guide


def test_deploy_guide_covers_the_deployer_and_the_invokers() -> None:
    guide = deploy_guide()
    for service in sorted(EVENTBRIDGE_SLR_SERVICES | {FC_SLR_SERVICE}):
        assert f"CreateServiceLinkedRole --ServiceName {service}" in guide, service
    for needed in (
        "ram:PassRole",
        "AliyunFCFullAccess",
        "AliyunEventBridgeFullAccess",
        "AliyunLogFullAccess",
        "fc:InvokeFunction",
        "KCGUARD_ALLOW_MANUAL_ENFORCE",
        "acs:cs:<region>:<account-id>:cluster/",
        "CRON_TZ=Asia/Shanghai",
        "src/subCommands/2to3/index.ts",
        'BENCHMARKS.md, "Burst"',
    ):
        assert needed in guide, needed
    # the shared role variable is gone: the guide may say so, never tell anyone to set it
    assert not re.search(r"\bKCGUARD_ROLE=", guide), "KCGUARD_ROLE is not read"
    assert "no `KCGUARD_ROLE`" in guide


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


def test_the_event_format_default_is_what_the_trigger_delivers(template: dict[str, Any]) -> None:
    """KCGUARD_EVENT_FORMAT defaults to the delivery form template.yml's trigger is configured with
    (issue 16.2): an ActionTrail event in the other form cannot have come from the trigger."""
    from kubeconfig_guard.settings import EventFormat, Settings

    props = template["resources"]["kcguard-event"]["props"]
    [trigger] = [t for t in props["triggers"] if t["triggerType"] == "eventbridge"]
    schema = trigger["triggerConfig"]["eventSinkConfig"]["deliveryOption"]["eventSchema"]
    configured = props["environmentVariables"].get("KCGUARD_EVENT_FORMAT") or None
    default = Settings.model_fields["event_format"].default
    assert {"CloudEvents": EventFormat.CLOUDEVENTS, "RawData": EventFormat.RAWDATA}[schema] == (
        EventFormat(configured) if configured else default
    )
