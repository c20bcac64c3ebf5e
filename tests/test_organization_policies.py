"""Organization mode's policies and ROS templates agree with the code, each other and the ROS docs.

* ``policies/kcguard-member.json`` (the member role) grants exactly the RAM actions of the ACK
  operations the code calls (``api.OPERATIONS``), cluster-scoped where the API allows it, as
  ``policies/kcguard-event.json`` does;
* ``policies/member-trust-policy.json`` lets only the central account's two function roles assume
  the member role, and only with the ``sts:ExternalId`` condition;
* ``policies/kcguard-org-{event,summary}.json`` add to the central roles exactly ``sts:AssumeRole`` on
  the member role and ``resourcemanager:ListAccounts``; ``kcguard-org-receiver.json`` only
  ``eventbridge:PutEvents`` on the central bus;
* ``deploy/organization/{member,central}.ros.yaml`` parse, use only resource types and properties the
  ROS documentation lists (``ROS_DOCUMENTED``, with the pages), embed exactly those policies, and route
  exactly ``events.eventbridge_pattern()`` (template.yml's trigger filter);
* the names the templates, template.yml and the settings share are the same names.

The ROS intrinsic functions the templates use are evaluated here (``evaluate``); one this file does
not know fails the test rather than being skipped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeconfig_guard.api import OPERATIONS
from kubeconfig_guard.events import eventbridge_pattern
from kubeconfig_guard.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
DEPLOY = ROOT / "deploy" / "organization"
MEMBER_TEMPLATE = DEPLOY / "member.ros.yaml"
CENTRAL_TEMPLATE = DEPLOY / "central.ros.yaml"
TEMPLATE = ROOT / "template.yml"
GUIDE = ROOT / "docs" / "organization.md"
DEPLOY_README = DEPLOY / "README.md"

CLUSTER_RESOURCE = "acs:cs:*:*:cluster/*"
CENTRAL = "111122223333"
MEMBERS = ["444455556666", "777788889999"]
EXTERNAL_ID = "kcg-3f9a0c1d2e4b5a6978c0d1e2f3a4b5c6"

# --- what the ROS documentation lists ------------------------------------------------------------
# Every resource type the templates use, with its documentation page and the properties (and nested
# properties) that page lists. Property names come from the pages (and, for the nested ones the page
# excerpts cut, from the ROS CDK generated from the same resource specification: alibabacloud-go/ros-cdk
# v1.3.0, alicloudroscdkram and alicloudroscdkeventbridge jsii packages, which link the same pages).
ROS_DOCUMENTED: dict[str, dict[str, Any]] = {
    "ALIYUN::RAM::Role": {
        "doc": "https://www.alibabacloud.com/help/en/ros/developer-reference/aliyun-ram-role",
        "properties": {
            "RoleName",
            "Description",
            "AssumeRolePolicyDocument",
            "MaxSessionDuration",
            "Policies",
            "PolicyAttachments",
            "IgnoreExisting",
            "DeletionForce",
        },
        "required": {"RoleName", "AssumeRolePolicyDocument"},
        "MaxSessionDuration": (3600, 43200),
        "AssumeRolePolicyDocument": {"Version", "Statement"},
        "AssumeRolePolicyDocument.Statement": {"Action", "Effect", "Principal", "Condition"},
        "Principal": {"RAM", "Service", "Federated"},
        "Policies": {"PolicyName", "PolicyDocument", "Description", "IgnoreExisting"},
        "PolicyDocument": {"Version", "Statement"},
        "PolicyDocument.Statement": {"Effect", "Action", "Resource", "Condition"},
    },
    "ALIYUN::EventBridge::Rule": {
        # "Last Updated: Aug 11, 2025"; zh: https://help.aliyun.com/zh/ros/developer-reference/aliyun-eventbridge-rule
        "doc": "https://www.alibabacloud.com/help/en/ros/developer-reference/aliyun-eventbridge-rule",
        "properties": {"EventBusName", "FilterPattern", "RuleName", "Targets", "Status", "Description"},
        "required": {"EventBusName", "FilterPattern", "RuleName", "Targets"},
        "Targets": {
            "Id",
            "Type",
            "Endpoint",
            "ParamList",
            "PushRetryStrategy",
            "DeadLetterQueue",
            "ConcurrentConfig",
            "ErrorsTolerance",
        },
        "Targets.required": {"Id", "Type", "Endpoint", "ParamList"},
        "ParamList": {"ResourceKey", "Form", "Value", "Template"},
        # "Each field in the pattern can contain up to five values." (the same page)
        "values_per_field": 5,
    },
}
# Template sections, parameter attributes and intrinsic functions the templates may use: all appear in
# Alibaba Cloud's own ROS templates (aliyun/ros-templates, e.g. Conditions with Fn::Not/Fn::And/
# Fn::Equals, Fn::Split, CommaDelimitedList, NoEcho), and a condition on a resource is `Condition:`.
TEMPLATE_SECTIONS = {"ROSTemplateFormatVersion", "Description", "Parameters", "Conditions", "Resources"}
PARAMETER_ATTRIBUTES = {
    "Type",
    "Default",
    "Description",
    "AllowedPattern",
    "AllowedValues",
    "NoEcho",
    "MinValue",
    "MaxValue",
}
PARAMETER_TYPES = {"String", "Number", "CommaDelimitedList"}
PSEUDO_PARAMETERS = {"ALIYUN::Region", "ALIYUN::TenantId"}


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    return data


def load_policy(name: str) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads((POLICIES / name).read_text(encoding="utf-8"))
    assert policy["Version"] == "1"
    return policy


# --- evaluating the templates ---------------------------------------------------------------------


class Stack:
    """A template with its parameters and pseudo parameters: evaluates intrinsics and conditions."""

    def __init__(self, template: dict[str, Any], values: dict[str, Any], region: str, tenant: str) -> None:
        self.template = template
        self.params: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            value = values.get(name, spec.get("Default"))
            assert value is not None, f"parameter {name} has no value and no default"
            if spec["Type"] == "CommaDelimitedList" and isinstance(value, str):
                value = [item.strip() for item in value.split(",")]
            self.params[name] = value
        unknown = set(values) - set(self.params)
        assert not unknown, f"no such parameters: {sorted(unknown)}"
        self.params["ALIYUN::Region"] = region
        self.params["ALIYUN::TenantId"] = tenant

    def condition(self, name: str) -> bool:
        result = self.evaluate(self.template["Conditions"][name])
        assert isinstance(result, bool), f"condition {name} is not a boolean"
        return result

    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources this stack creates, with their evaluated properties."""
        created = {}
        for name, resource in self.template["Resources"].items():
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            created[name] = {"Type": resource["Type"], "Properties": self.evaluate(resource["Properties"])}
        return created

    def _sub(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            assert name in self.params, f"Fn::Sub names ${{{name}}}, which is not a parameter"
            value = self.params[name]
            assert isinstance(value, (str, int)), f"Fn::Sub of ${{{name}}}, a {type(value).__name__}"
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def evaluate(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.evaluate(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                assert arg in self.params, f"Ref to {arg}, which is not a parameter"
                return self.params[arg]
            if key == "Fn::Sub":
                assert isinstance(arg, str), "only the string form of Fn::Sub is used"
                return self._sub(arg)
            if key == "Fn::Join":
                separator, items = arg
                items = self.evaluate(items)
                parts = [self.evaluate(item) for item in items]
                assert all(isinstance(part, str) for part in parts), f"Fn::Join of {parts!r}"
                return separator.join(parts)
            if key == "Fn::Split":
                separator, text = arg
                text = self.evaluate(text)
                assert isinstance(text, str)
                return text.split(separator)
            if key == "Fn::Equals":
                left, right = (self.evaluate(item) for item in arg)
                return left == right
            if key == "Fn::Not":
                (inner,) = arg
                result = self.evaluate(inner)
                assert isinstance(result, bool)
                return not result
            if key == "Fn::And":
                results = [self.evaluate(item) for item in arg]
                assert all(isinstance(result, bool) for result in results) and len(results) >= 2
                return all(results)
            if key == "Condition":
                return self.condition(arg)
            assert not key.startswith("Fn::"), f"{key}: an intrinsic function this test does not evaluate"
        return {key: self.evaluate(item) for key, item in value.items()}


def member_stack(region: str = "cn-hangzhou", tenant: str = MEMBERS[0], **values: Any) -> Stack:
    values = {"CentralAccountId": CENTRAL, "ExternalId": EXTERNAL_ID, **values}
    return Stack(load_yaml(MEMBER_TEMPLATE), values, region=region, tenant=tenant)


def central_stack(**values: Any) -> Stack:
    values = {"MemberAccountIds": ",".join(MEMBERS), **values}
    return Stack(load_yaml(CENTRAL_TEMPLATE), values, region="cn-hangzhou", tenant=CENTRAL)


def test_the_evaluator_knows_what_it_evaluates() -> None:
    template = {
        "Parameters": {"A": {"Type": "String", "Default": "x"}, "L": {"Type": "CommaDelimitedList"}},
        "Conditions": {"IsX": {"Fn::Equals": [{"Ref": "A"}, "x"]}},
        "Resources": {},
    }
    stack = Stack(template, {"L": "1,2"}, region="r", tenant="9")
    assert stack.evaluate({"Fn::Sub": "a:${A}:${ALIYUN::TenantId}"}) == "a:x:9"
    assert stack.evaluate({"Fn::Split": [",", {"Fn::Join": ["-,", {"Ref": "L"}]}]}) == ["1-", "2"]
    assert stack.evaluate({"Fn::And": [{"Condition": "IsX"}, {"Fn::Not": [{"Fn::Equals": ["a", "b"]}]}]})
    with pytest.raises(AssertionError):
        stack.evaluate({"Fn::Select": ["0", {"Ref": "L"}]})
    with pytest.raises(AssertionError):
        stack.evaluate({"Fn::Sub": "${Nope}"})
    with pytest.raises(AssertionError):
        Stack(template, {"Nope": "1"}, region="r", tenant="9")


# --- the permission policies ----------------------------------------------------------------------


def statements(policy: dict[str, Any]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(actions, resources) of each statement; every statement an unconditioned Allow."""
    result = []
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert set(statement) == {"Effect", "Action", "Resource"}, statement
        actions = statement["Action"]
        resources = statement["Resource"]
        assert isinstance(actions, list) and isinstance(resources, list)
        result.append((tuple(sorted(actions)), tuple(sorted(resources))))
    return sorted(result)


def derived_member_policy() -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """The member role's policy from the operations table: the ACK calls the member side makes.

    Operations addressed to one cluster ({ClusterId} in the path) are scoped to clusters
    (acs:cs:{#regionId}:{#accountId}:cluster/{#ClusterId} in the ACK API reference); the listings,
    ACK's and the RAM ones ACK requires for ListClusterKubeconfigStates, only work on "*".
    """
    scoped = {op.ram_action for op in OPERATIONS if "{ClusterId}" in op.path}
    actions = {action for op in OPERATIONS for action in op.ram_actions}
    groups = [
        (scoped, CLUSTER_RESOURCE),
        ({a for a in actions - scoped if a.startswith("cs:")}, "*"),
        ({a for a in actions - scoped if not a.startswith("cs:")}, "*"),
    ]
    return sorted((tuple(sorted(group)), (resource,)) for group, resource in groups if group)


def test_member_policy_grants_exactly_the_ack_calls_of_the_code() -> None:
    member = load_policy("kcguard-member.json")
    assert statements(member) == derived_member_policy()
    granted = [action for actions, _ in statements(member) for action in actions]
    assert len(granted) == len(set(granted)), "an action is granted twice"
    assert set(granted) == {
        "cs:DescribeClustersV1",
        "cs:ListClusterKubeconfigStates",
        "cs:CleanClusterUserPermissions",
        "ram:ListUsers",
        "ram:ListRoles",
    }
    # the same actions, scoped the same way, as the central event function's own policy
    assert statements(member) == statements(load_policy("kcguard-event.json"))


def test_the_derivation_refuses_a_broader_member_policy() -> None:
    broader = load_policy("kcguard-member.json")
    broader["Statement"][0]["Action"].append("cs:DeleteCluster")
    assert statements(broader) != derived_member_policy()
    unscoped = load_policy("kcguard-member.json")
    unscoped["Statement"][0]["Resource"] = ["*"]
    assert statements(unscoped) != derived_member_policy()


def member_role_default() -> str:
    default = Settings.model_fields["member_role"].default
    assert isinstance(default, str)
    return default


@pytest.mark.parametrize("name", ["kcguard-org-event.json", "kcguard-org-summary.json"])
def test_central_roles_gain_only_assume_role_on_the_member_role_and_list_accounts(name: str) -> None:
    # AssumeRole's resource is the role ARN acs:ram::<account>:role/<name> (STS AssumeRole, RoleArn),
    # any member account; ListAccounts' resource type is acs:resourcemanager:*:{#accountId}:account/*
    # (Resource Manager 2020-03-31 ListAccounts, authorization table).
    assert statements(load_policy(name)) == sorted(
        [
            (("sts:AssumeRole",), (f"acs:ram:*:*:role/{member_role_default()}",)),
            (("resourcemanager:ListAccounts",), ("acs:resourcemanager:*:*:account/*",)),
        ]
    )


def test_the_receiving_role_may_only_put_events_on_the_central_bus() -> None:
    bus = central_stack().params["EventBusName"]
    assert statements(load_policy("kcguard-org-receiver.json")) == [
        (("eventbridge:PutEvents",), (f"acs:eventbridge:*:*:eventbus/{bus}",))
    ]


# --- the member role's trust ----------------------------------------------------------------------


def template_role_default(variable: str) -> str:
    """The default role name of template.yml's `vars.<variable>` (${env('NAME', 'default')})."""
    raw = load_yaml(TEMPLATE)["vars"][variable]
    match = re.fullmatch(r"\$\{env\('\w+', '([\w.-]+)'\)\}", raw)
    assert match, raw
    return match.group(1)


def trust_policy(central: str, external_id: str) -> dict[str, Any]:
    text = (POLICIES / "member-trust-policy.json").read_text(encoding="utf-8")
    assert text.count("${CentralAccountId}") == 2 and text.count("${ExternalId}") == 1
    policy: dict[str, Any] = json.loads(
        text.replace("${CentralAccountId}", central).replace("${ExternalId}", external_id)
    )
    return policy


def test_trust_names_exactly_the_two_central_function_roles_and_requires_the_external_id() -> None:
    trust = trust_policy(CENTRAL, EXTERNAL_ID)
    assert trust["Version"] == "1"
    (statement,) = trust["Statement"]
    assert set(statement) == {"Effect", "Action", "Principal", "Condition"}
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRole"
    # RAM principals: the roles themselves, not the account's root (which would let any RAM
    # identity of the central account with sts:AssumeRole in): RAM, "Modify the trust policy of a
    # RAM role", example 1 (a specific RAM role).
    roles = {template_role_default("eventRole"), template_role_default("summaryRole")}
    assert roles == {"kubeconfig-guard-event", "kubeconfig-guard-summary"}
    assert statement["Principal"] == {"RAM": sorted(f"acs:ram::{CENTRAL}:role/{role}" for role in roles)}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}


# --- the member template --------------------------------------------------------------------------


def check_documented(template: dict[str, Any]) -> None:
    """Every section, parameter, resource type and property is one the ROS documentation lists."""
    assert set(template) <= TEMPLATE_SECTIONS, set(template) - TEMPLATE_SECTIONS
    assert template["ROSTemplateFormatVersion"] == "2015-09-01"
    for name, spec in template["Parameters"].items():
        assert set(spec) <= PARAMETER_ATTRIBUTES, (name, set(spec) - PARAMETER_ATTRIBUTES)
        assert spec["Type"] in PARAMETER_TYPES, (name, spec["Type"])
    for name, resource in template["Resources"].items():
        assert set(resource) <= {"Type", "Properties", "Condition"}, name
        documented = ROS_DOCUMENTED.get(resource["Type"])
        assert documented is not None, f"{name}: {resource['Type']} is not in ROS_DOCUMENTED"
        properties = resource["Properties"]
        assert set(properties) <= documented["properties"], (name, set(properties) - documented["properties"])
        assert documented["required"] <= set(properties), (name, documented["required"] - set(properties))
        if resource["Type"] == "ALIYUN::RAM::Role":
            trust = properties["AssumeRolePolicyDocument"]
            assert set(trust) <= documented["AssumeRolePolicyDocument"]
            for statement in trust["Statement"]:
                assert set(statement) <= documented["AssumeRolePolicyDocument.Statement"], statement
                assert set(statement["Principal"]) <= documented["Principal"]
            for policy in properties.get("Policies", []):
                assert set(policy) <= documented["Policies"], policy
                assert set(policy["PolicyDocument"]) <= documented["PolicyDocument"]
                for statement in policy["PolicyDocument"]["Statement"]:
                    assert set(statement) <= documented["PolicyDocument.Statement"], statement
        if resource["Type"] == "ALIYUN::EventBridge::Rule":
            targets = properties["Targets"]
            assert 1 <= len(targets) <= 5, "a rule takes one to five targets"
            for target in targets:
                assert set(target) <= documented["Targets"], set(target) - documented["Targets"]
                assert documented["Targets.required"] <= set(target), target
                for param in target["ParamList"]:
                    assert set(param) <= documented["ParamList"], param
                    assert {"ResourceKey", "Form"} <= set(param), param


@pytest.mark.parametrize("path", [MEMBER_TEMPLATE, CENTRAL_TEMPLATE], ids=lambda p: p.name)
def test_templates_use_only_documented_ros_types_and_properties(path: Path) -> None:
    check_documented(load_yaml(path))


def test_the_documented_check_refuses_what_the_docs_do_not_list() -> None:
    template = load_yaml(MEMBER_TEMPLATE)
    template["Resources"]["RouteRule"]["Properties"]["EventPattern"] = {}
    with pytest.raises(AssertionError):
        check_documented(template)
    template = load_yaml(MEMBER_TEMPLATE)
    template["Resources"]["Bus"] = {"Type": "ALIYUN::EventBridge::EventBus", "Properties": {}}
    with pytest.raises(AssertionError):
        check_documented(template)
    template = load_yaml(MEMBER_TEMPLATE)
    template["Resources"]["RouteRule"]["Properties"]["Targets"][0]["RoleArn"] = "x"
    with pytest.raises(AssertionError):
        check_documented(template)


def test_member_role_embeds_exactly_the_member_policy_and_trust() -> None:
    role = member_stack().resources()["MemberRole"]
    assert role["Type"] == "ALIYUN::RAM::Role"
    properties = role["Properties"]
    assert properties["RoleName"] == member_role_default()
    assert properties["AssumeRolePolicyDocument"] == trust_policy(CENTRAL, EXTERNAL_ID)
    (policy,) = properties["Policies"]
    assert policy["PolicyDocument"] == load_policy("kcguard-member.json")
    low, high = ROS_DOCUMENTED["ALIYUN::RAM::Role"]["MaxSessionDuration"]
    assert low <= properties["MaxSessionDuration"] <= high
    # the sessions the code asks for fit the role (AssumeRole DurationSeconds <= MaxSessionDuration)
    assert Settings.model_fields["member_session_seconds"].default <= properties["MaxSessionDuration"]


def test_member_stack_parameters_follow_the_central_names() -> None:
    member = load_yaml(MEMBER_TEMPLATE)["Parameters"]
    central = load_yaml(CENTRAL_TEMPLATE)["Parameters"]
    assert member["CentralEventRoleName"]["Default"] == template_role_default("eventRole")
    assert member["CentralSummaryRoleName"]["Default"] == template_role_default("summaryRole")
    assert member["CentralEventBusName"]["Default"] == central["EventBusName"]["Default"]
    assert member["CentralReceiverRoleName"]["Default"] == central["ReceiverRoleName"]["Default"]
    assert member["MemberRoleName"]["Default"] == member_role_default()
    assert member["ExternalId"].get("NoEcho") is True, "the ExternalId is not shown in ROS"


def test_external_id_pattern_is_what_sts_accepts() -> None:
    # STS AssumeRole ExternalId: "2 to 1,224 characters ... letters, digits, and = , . @ : / - _",
    # regular expression [\w+=,.@:\/-]* (alibabacloud-sdk AssumeRoleRequest, externalId).
    pattern = re.compile(load_yaml(MEMBER_TEMPLATE)["Parameters"]["ExternalId"]["AllowedPattern"])
    for good in (EXTERNAL_ID, "ab", "a=b,c.d@e:f/g-h_i+j", "f" * 1224):
        assert pattern.fullmatch(good), good
    for bad in ("a", "with space", 'quote"', "f" * 1225, "semi;colon"):
        assert not pattern.fullmatch(bad), bad


def normalised(pattern: Any) -> Any:
    if isinstance(pattern, dict):
        return {key: normalised(value) for key, value in pattern.items()}
    if isinstance(pattern, list):
        return sorted(json.dumps(item, sort_keys=True) for item in pattern)
    return pattern


def field_values(pattern: dict[str, Any]) -> list[tuple[str, int]]:
    found = []
    for key, value in pattern.items():
        if isinstance(value, dict):
            found += [(f"{key}.{inner}", count) for inner, count in field_values(value)]
        else:
            found.append((key, len(value)))
    return found


def test_member_rule_routes_exactly_the_events_the_code_acts_on() -> None:
    rule = member_stack().resources()["RouteRule"]["Properties"]
    assert rule["EventBusName"] == "default", "ActionTrail delivers to the member's default bus"
    assert normalised(rule["FilterPattern"]) == normalised(eventbridge_pattern())
    limit = ROS_DOCUMENTED["ALIYUN::EventBridge::Rule"]["values_per_field"]
    assert all(count <= limit for _, count in field_values(rule["FilterPattern"])), field_values(
        rule["FilterPattern"]
    )


def test_member_rule_targets_the_central_custom_bus_through_the_receiving_role() -> None:
    central = central_stack()
    member = member_stack(region="cn-shanghai", CentralRegion="cn-hangzhou")
    rule = member.resources()["RouteRule"]["Properties"]
    (target,) = rule["Targets"]
    bus = central.params["EventBusName"]
    assert bus != "default", "a default bus routes only to custom buses (EventBridge, Mar 2026)"
    assert target["Type"] == "acs.eventbridge"
    assert target["Endpoint"] == f"acs:eventbridge:cn-hangzhou:{CENTRAL}:eventbus/{bus}"
    params = {p["ResourceKey"]: (p["Form"], p.get("Value")) for p in target["ParamList"]}
    assert params == {
        "RegionId": ("CONSTANT", "cn-hangzhou"),
        "AccountType": ("CONSTANT", "AnotherAccount"),
        "AccountId": ("CONSTANT", CENTRAL),
        "EventBusName": ("CONSTANT", bus),
        "RAMRoleName": ("CONSTANT", central.params["ReceiverRoleName"]),
        "Body": ("ORIGINAL", ""),
    }


def test_member_stack_creates_the_role_once_and_nothing_in_the_central_account() -> None:
    assert set(member_stack(region="cn-hangzhou").resources()) == {"MemberRole", "RouteRule"}
    # RAM is global: another region's stack instance of the same account only adds the route
    assert set(member_stack(region="ap-southeast-1").resources()) == {"RouteRule"}
    assert set(member_stack(region="ap-southeast-1", RoleRegion="ap-southeast-1").resources()) == {
        "MemberRole",
        "RouteRule",
    }
    # the central account's events already reach its own default bus and trigger
    assert member_stack(tenant=CENTRAL).resources() == {}


# --- the central template -------------------------------------------------------------------------


def event_function() -> dict[str, Any]:
    props: dict[str, Any] = load_yaml(TEMPLATE)["resources"]["kcguard-event"]["props"]
    return props


def test_receiving_role_trusts_only_the_members_eventbridge_and_only_puts_events() -> None:
    role = central_stack().resources()["ReceiverRole"]["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
    assert statement["Principal"] == {"Service": [f"{m}@eventbridge.aliyuncs.com" for m in MEMBERS]}
    (policy,) = role["Policies"]
    assert policy["PolicyDocument"] == load_policy("kcguard-org-receiver.json")
    single = central_stack(MemberAccountIds=MEMBERS[1]).resources()["ReceiverRole"]["Properties"]
    assert single["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": [f"{MEMBERS[1]}@eventbridge.aliyuncs.com"]
    }


def test_central_rule_invokes_the_event_function_asynchronously_with_the_same_pattern() -> None:
    resources = central_stack().resources()
    rule = resources["EventFunctionRule"]["Properties"]
    assert rule["EventBusName"] == central_stack().params["EventBusName"] != "default"
    assert normalised(rule["FilterPattern"]) == normalised(eventbridge_pattern())
    (target,) = rule["Targets"]
    props = event_function()
    assert target["Type"] == "acs.fc.function"
    assert target["Endpoint"] == f"acs:fc:cn-hangzhou:{CENTRAL}:functions/{props['functionName']}"
    params = {p["ResourceKey"]: (p["Form"], p.get("Value")) for p in target["ParamList"]}
    (trigger,) = props["triggers"]
    assert params == {
        "functionName": ("CONSTANT", props["functionName"]),
        "Qualifier": ("CONSTANT", trigger["qualifier"]),
        "InvocationType": ("CONSTANT", "Async"),
        "Body": ("ORIGINAL", ""),
    }
    # an extra stack for another batch of members adds only a receiving role
    assert set(central_stack(CreateEventFunctionRule="false").resources()) == {"ReceiverRole"}


# --- the guides --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [GUIDE, DEPLOY_README], ids=lambda p: p.name)
def test_guides_name_only_files_that_exist(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    named = set(re.findall(r"(?:policies|deploy/organization)/[\w.-]+\.(?:json|yaml|md)", text))
    assert named, f"{path.name} names no policy or template"
    missing = sorted(name for name in named if not (ROOT / name).exists())
    assert not missing, f"{path.name} names files that do not exist: {missing}"


def test_guide_covers_every_organization_policy_and_setting() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    for name in (
        "kcguard-member.json",
        "member-trust-policy.json",
        "kcguard-org-event.json",
        "kcguard-org-summary.json",
        "kcguard-org-receiver.json",
    ):
        assert f"policies/{name}" in text, name
    for field in (
        "accounts",
        "accounts_exclude",
        "member_role",
        "member_external_id",
        "member_session_seconds",
        "sts_endpoint",
        "resourcemanager_endpoint",
    ):
        assert f"KCGUARD_{field.upper()}" in text, field
    assert "ResourceDirectoryAccountAccessRole" in text


def test_template_passes_the_organization_settings_and_defaults_to_self() -> None:
    raw = load_yaml(TEMPLATE)
    assert raw["vars"]["accounts"] == "${env('KCGUARD_ACCOUNTS', 'self')}", "self mode stays the default"
    assert template_role_default("memberRole") == member_role_default()
    for name, resource in raw["resources"].items():
        if resource["props"]["handler"] == "kubeconfig_guard.handlers.failure_handler":
            continue  # kubeconfig-guard-notify (issue 18) calls no cloud API: no organization settings
        env = resource["props"]["environmentVariables"]
        for key in (
            "KCGUARD_ACCOUNTS",
            "KCGUARD_ACCOUNTS_EXCLUDE",
            "KCGUARD_MEMBER_ROLE",
            "KCGUARD_MEMBER_SESSION_SECONDS",
        ):
            assert key in env, (name, key)
    summary = raw["resources"]["kcguard-summary"]["props"]["environmentVariables"]
    # a secret: from the deploying shell only, like the webhooks
    assert summary["KCGUARD_MEMBER_EXTERNAL_ID"] == "${env('KCGUARD_MEMBER_EXTERNAL_ID', '')}"
