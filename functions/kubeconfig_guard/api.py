"""The one table of the ACK OpenAPI operations kubeconfig-guard uses (product CS, 2015-12-15).

The client (``client.py``), the fake's wire layer (``fake/wire.py``), the fake's test helpers,
the least-privilege policies (``policies/``, checked by tests/test_template.py) and the
benchmark all read it: operation names, HTTP methods and paths, page-size rules, the API
version, and the RAM actions that authorize each call (as Cloud Custodian's actions declare
their permissions, so least privilege is derived from what the code can call).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

API_VERSION = "2015-12-15"


@dataclass(frozen=True)
class Paging:
    """How a listing operation pages: its query parameters and the documented page sizes."""

    number_param: str
    size_param: str
    min_size: int
    max_size: int
    default_size: int
    items_key: str  # the answer's list
    page_key: str  # the answer's page metadata
    used_size: int  # the page size kubeconfig-guard asks for


@dataclass(frozen=True)
class Operation:
    """An OpenAPI operation, and the RAM actions that authorize it.

    ACK's operations are ROA (a method and a path per operation, ``version`` 2015-12-15); the
    organization's (STS ``AssumeRole``, Resource Manager ``ListAccounts``) are RPC: ``POST /`` with
    the operation named by the signed ``x-acs-action`` header and the parameters in the query, as
    the official SDKs send them (``alibabacloud-tea-openapi`` ``do_request``, signature V3).
    """

    name: str
    method: str
    path: str  # with {Placeholders}
    ram_action: str
    associated_ram_actions: tuple[str, ...] = ()  # other actions ACK requires for this call
    paging: Paging | None = None
    version: str = API_VERSION
    product: str = "cs"  # the endpoint's product code: cs.{region}.aliyuncs.com, sts..., resourcemanager...

    @property
    def ram_actions(self) -> tuple[str, ...]:
        return (self.ram_action, *self.associated_ram_actions)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when ``method path`` is a request for this operation, else None."""
        if method != self.method:
            return None
        found = _pattern(self.path).fullmatch(path)
        if found is None:
            return None
        return {k: unquote(v) for k, v in found.groupdict().items()}


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{\w+\})", template)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(regex)


CLUSTERS_PAGING = Paging("page_number", "page_size", 1, 100, 10, "clusters", "page_info", used_size=100)
STATES_PAGING = Paging("pageNumber", "pageSize", 10, 50, 10, "states", "page", used_size=50)

DESCRIBE_CLUSTERS_V1 = Operation(
    "DescribeClustersV1", "GET", "/api/v1/clusters", "cs:DescribeClustersV1", paging=CLUSTERS_PAGING
)
LIST_CLUSTER_KUBECONFIG_STATES = Operation(
    "ListClusterKubeconfigStates",
    "GET",
    "/clusters/{ClusterId}/kubeconfig/states",
    "cs:ListClusterKubeconfigStates",
    # ACK's documentation: the caller also needs to read RAM users and roles.
    associated_ram_actions=("ram:ListUsers", "ram:ListRoles"),
    paging=STATES_PAGING,
)
CLEAN_CLUSTER_USER_PERMISSIONS = Operation(
    "CleanClusterUserPermissions",
    "DELETE",
    "/cluster/{ClusterId}/user/{Uid}/permissions",
    "cs:CleanClusterUserPermissions",
)
# Query parameters outside the paging ones (the names the documentation gives).
CLUSTERS_REGION_PARAM = "region_id"  # DescribeClustersV1: the region's clusters only
CLEAN_FORCE_PARAM = "Force"  # CleanClusterUserPermissions: skip the 7-day access check

# Every ACK operation the code can call (on the guarded account, or in a member with its role).
OPERATIONS = (DESCRIBE_CLUSTERS_V1, LIST_CLUSTER_KUBECONFIG_STATES, CLEAN_CLUSTER_USER_PERMISSIONS)
BY_NAME = {op.name: op for op in OPERATIONS}

# Organization mode (``KCGUARD_ACCOUNTS`` other than ``self``): the central account's calls.
# STS AssumeRole (2015-04-01): https://www.alibabacloud.com/help/en/ram/developer-reference/api-sts-2015-04-01-assumerole
ASSUME_ROLE = Operation("AssumeRole", "POST", "/", "sts:AssumeRole", version="2015-04-01", product="sts")
# Resource Manager ListAccounts (2020-03-31), management account or delegated administrator only:
# https://www.alibabacloud.com/help/en/resource-management/developer-reference/api-resourcemanager-2020-03-31-listaccounts
LIST_ACCOUNTS_PAGING = Paging("PageNumber", "PageSize", 1, 100, 10, "Accounts", "", used_size=100)
LIST_ACCOUNTS = Operation(
    "ListAccounts",
    "POST",
    "/",
    "resourcemanager:ListAccounts",
    paging=LIST_ACCOUNTS_PAGING,
    version="2020-03-31",
    product="resourcemanager",
)
ORGANIZATION_OPERATIONS = (ASSUME_ROLE, LIST_ACCOUNTS)
RPC_BY_VERSION_AND_NAME = {(op.version, op.name): op for op in ORGANIZATION_OPERATIONS}


def route(method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
    """The operation and its path parameters for a request line, or None."""
    for op in OPERATIONS:
        if (params := op.match(method, path)) is not None:
            return op, params
    return None
