"""scripts/build makes reproducible Function Compute packages that work on the runtimes' Pythons.

The locks (``locks/``) are checked against pyproject.toml offline (fast tests). The rest is
``slow``: one build (both runtimes) is shared by the module; a commit exported twice
builds to the same bytes. For each runtime, the matching
CPython (pyenv) runs isolated (``-I -S``: no site-packages, nothing from the dev venv)
with only the built directory added to ``sys.path``; it imports every handler of
template.yml and handles ``events/ram-delete-user.json`` against the fake ACK served
from the dev venv, with credentials from the default chain (the ``ALIBABA_CLOUD_*``
variables, as on python3.12 where the context carries none).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeconfig_guard.credentials import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET
from support.harness import fake_ack_process

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "scripts" / "build"
# scripts/build is a launcher over scripts/buildlib/: the tests import its modules.
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from buildlib import cli, install, locks, package, project, requirements, zipping  # noqa: E402

WORLD = ROOT / "examples" / "world.json"
SAMPLE = ROOT / "events" / "ram-delete-user.json"
TEMPLATE = ROOT / "template.yml"
ALICE = "200000000000000101"
RUNTIMES = ("python3.10", "python3.12")
# Local-only or development distributions that must never be deployed.
FORBIDDEN_TOP_LEVEL = {
    "tests",
    "typer",
    "rich",
    "pytest",
    "_pytest",
    "hypothesis",
    "mypy",
    "ruff",
    "yaml",
    "bin",
}


def interpreter(runtime: str) -> Path | None:
    """The pyenv CPython of a runtime (highest patch release), else one on PATH."""
    version = runtime.removeprefix("python")
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(
        (p for p in versions.glob(f"{version}.*") if re.fullmatch(rf"{re.escape(version)}\.\d+", p.name)),
        key=lambda p: int(p.name.rsplit(".", 1)[1]),
    )
    for candidate in reversed(candidates):
        if (candidate / "bin" / "python").exists():
            return candidate / "bin" / "python"
    found = shutil.which(f"python{version}")
    return Path(found) if found else None


def template_handlers() -> list[str]:
    template = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    return sorted({r["props"]["handler"] for r in template["resources"].values()})


# --- the locks (fast, offline) ------------------------------------------------------------


def test_locks_match_pyproject() -> None:
    # CI's `scripts/build --check-locks`: a dependency changed in pyproject.toml without
    # `scripts/build --lock` fails here.
    assert locks.check_locks() == []
    variants = locks.lock_variants()
    assert {(v.runtime, v.extras) for v in variants} == {
        (runtime, extras) for runtime in RUNTIMES for extras in ((), ("oss",))
    }
    for variant in variants:
        pins = locks.lock_pins(variant.path.read_text(encoding="utf-8"))
        assert "pydantic-core" in pins and ("alibabacloud-oss-v2" in pins) is (variant.extras == ("oss",))


@pytest.fixture
def project_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pyproject.toml and locks/ copied aside, with the build script pointed at the copy."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "locks", tmp_path / "locks")
    monkeypatch.setattr(project, "ROOT", tmp_path)
    monkeypatch.setattr(project, "LOCKS", tmp_path / "locks")
    assert locks.check_locks() == []
    return tmp_path


def test_a_changed_dependency_makes_the_locks_stale(project_copy: Path) -> None:
    pyproject = project_copy / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    assert '"httpx>=0.27,<1"' in text
    pyproject.write_text(text.replace('"httpx>=0.27,<1"', '"httpx>=0.29,<1"'), encoding="utf-8")
    problems = locks.check_locks()
    assert len([p for p in problems if "is stale" in p]) == len(locks.lock_variants())
    assert [p for p in problems if re.search(r"pins httpx==[\d.]+, outside 'httpx>=0.29,<1'", p)]
    process = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--check-locks"], capture_output=True, text=True, timeout=60
    )
    assert process.returncode == 0, process.stderr  # the real tree is untouched


def test_an_edited_lock_is_refused(project_copy: Path) -> None:
    lock = project_copy / "locks" / "fc-python3.10.txt"
    text = lock.read_text(encoding="utf-8")
    # a pin without its hashes, and a local-only distribution slipped in
    edited = re.sub(
        r"(?m)^(sniffio==[^\s]+) \\\n(    --hash=sha256:[0-9a-f]+ \\\n)*    --hash=sha256:[0-9a-f]+\n",
        r"\1\n",
        text,
    )
    assert edited != text
    lock.write_text(edited + "typer==0.12.0 \\\n    --hash=sha256:" + "0" * 64 + "\n", encoding="utf-8")
    problems = locks.check_lock(locks.LockVariant("python3.10"))
    assert any("sniffio==" in p and "no sha256" in p for p in problems), problems
    assert any("local-only typer" in p for p in problems), problems
    # the build refuses it before installing anything
    with pytest.raises(SystemExit, match="no sha256"):
        install.install_dependencies(project_copy / "out", locks.LockVariant("python3.10"))
    assert not (project_copy / "out").exists()


def test_local_only_extras_are_never_deployed() -> None:
    for extra in ("dev", "cli"):
        with pytest.raises(SystemExit, match="local-only"):
            project.runtime_requirements([extra])
    with pytest.raises(SystemExit, match="unknown extra"):
        project.runtime_requirements(["nope"])


def test_a_malformed_pyproject_is_a_clear_error(project_copy: Path) -> None:
    pyproject = project_copy / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(
        re.sub(r"(?ms)^dependencies = \[.*?^\]", 'dependencies = "httpx"', text, count=1), encoding="utf-8"
    )
    with pytest.raises(SystemExit, match=r"\[project\]\.dependencies must be a list of strings"):
        locks.check_locks()
    pyproject.write_text("[tool.x]\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"no \[project\] table"):
        project.runtime_requirements([])
    pyproject.write_text("[project\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"pyproject\.toml is not valid TOML"):
        project.read_project()


def test_the_launcher_is_thin_and_keeps_its_help() -> None:
    # scripts/build holds the user-facing docstring; buildlib.cli is the code behind it.
    source = BUILD_SCRIPT.read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source))
    assert docstring is not None and docstring.split("\n\n")[0] == cli.DESCRIPTION
    assert len(source.splitlines()) < 60
    process = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--help"], capture_output=True, text=True, timeout=60
    )
    assert process.returncode == 0, process.stderr
    assert " ".join(process.stdout.split()).count(cli.DESCRIPTION) == 1
    for option in ("--runtime", "--out", "--extra", "--lock", "--check-locks"):
        assert option in process.stdout


def test_zip_timestamps_come_from_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "a.py").write_text("a = 1\n")
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o700)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    zipping.make_zip(source, tmp_path / "default.zip")
    with zipfile.ZipFile(tmp_path / "default.zip") as zf:
        assert {i.date_time for i in zf.infolist()} == {zipping.ZIP_DATE}
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
    assert modes == {"pkg/a.py": 0o100644, "run.sh": 0o100755}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795000001")  # 2026-11-18 11:06:41 UTC
    zipping.make_zip(source, tmp_path / "dated.zip")
    with zipfile.ZipFile(tmp_path / "dated.zip") as zf:
        assert {i.date_time for i in zf.infolist()} == {(2026, 11, 18, 11, 6, 40)}
    (source / "pkg" / "a.py").touch()  # file times never reach the zip
    zipping.make_zip(source, tmp_path / "again.zip")
    assert (tmp_path / "again.zip").read_bytes() == (tmp_path / "dated.zip").read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert zipping.zip_date() == zipping.ZIP_DATE
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(SystemExit, match="SOURCE_DATE_EPOCH"):
        zipping.zip_date()


# --- one build of both runtimes (slow) -----------------------------------------------------


@pytest.fixture(scope="module")
def build_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fc-build")
    process = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path_factory.getbasetemp(),
    )
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-4000:]
    print(process.stdout)
    for runtime in RUNTIMES:
        archive = out / project.zip_name(runtime)
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        # the build prints each zip's sha256 and size, and writes the sha256sum line
        assert f"{digest}  {archive.name}  {archive.stat().st_size} bytes" in process.stdout
        assert (out / f"{archive.name}.sha256").read_text() == f"{digest}  {archive.name}\n"
    return out


def package_dir(build_out: Path, runtime: str) -> Path:
    return build_out / project.package_dir_name(runtime)


def package_zip(build_out: Path, runtime: str) -> Path:
    return build_out / project.zip_name(runtime)


def files_of(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


# --- what is in the package ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_package_holds_the_code_and_runtime_dependencies_only(build_out: Path, runtime: str) -> None:
    directory = package_dir(build_out, runtime)
    files = files_of(directory)
    top_level = {f.split("/", 1)[0] for f in files}
    assert not top_level & FORBIDDEN_TOP_LEVEL, sorted(top_level & FORBIDDEN_TOP_LEVEL)
    assert not (directory / "kubeconfig_guard" / "fake").exists()
    assert not (directory / "kubeconfig_guard" / "cli.py").exists()
    assert "kubeconfig_guard/handlers.py" in files
    # package data travels with the code
    source_data = [
        p.relative_to(project.PACKAGE_SRC.parent).as_posix()
        for p in project.PACKAGE_SRC.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "fake" not in p.parts
    ]
    assert set(source_data) <= set(files)
    # Bytecode only of the runtime's own Python, next to its source (faster cold starts on FC's
    # read-only code directory); none at all when no such interpreter was there to compile it.
    tag = "cpython-" + runtime.removeprefix("python").replace(".", "")
    compiled = [f for f in files if f.endswith((".pyc", ".pyo"))]
    wrong = [f for f in compiled if not (f.endswith(f".{tag}.pyc") and "__pycache__/" in f)]
    assert not wrong, wrong[:5]
    if package.runtime_python(runtime) is not None:
        assert f"kubeconfig_guard/__pycache__/handlers.{tag}.pyc" in files
        compiled_templates = [
            f for f in files if f.startswith("kubeconfig_guard/summary/templates_compiled/")
        ]
        assert len(compiled_templates) == 2, compiled_templates  # report.html.j2's module and its .pyc

    installed = {requirements.canonical(name) for name in install.installed_requirements(directory)}
    pyproject = project.tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirement = requirements.requirement_class()
    runtime_names = {requirements.canonical(requirement(r).name) for r in pyproject["dependencies"]}
    local_only = {
        requirements.canonical(requirement(r).name)
        for extra in ("cli", "dev")
        for r in pyproject["optional-dependencies"][extra]
    } - {"kubeconfig-guard"}
    assert runtime_names <= installed
    assert not installed & local_only, sorted(installed & local_only)
    # exactly the distributions and versions of the lock, nothing else
    versions = {}
    for metadata in directory.glob("*.dist-info/METADATA"):
        text = metadata.read_text(encoding="utf-8")
        name = re.search(r"(?m)^Name: (.+)$", text).group(1)  # type: ignore[union-attr]
        versions[requirements.canonical(name)] = re.search(r"(?m)^Version: (.+)$", text).group(1)  # type: ignore[union-attr]
    lock = locks.LockVariant(runtime).path.read_text(encoding="utf-8")
    assert versions == locks.lock_pins(lock)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_compiled_wheels_match_the_runtime(build_out: Path, runtime: str) -> None:
    tag = "cpython-" + runtime.removeprefix("python").replace(".", "")
    extensions = [f for f in files_of(package_dir(build_out, runtime)) if f.endswith(".so")]
    assert any(f.startswith("pydantic_core/") for f in extensions)
    for extension in extensions:
        assert f".{tag}-x86_64-linux-gnu.so" in extension or extension.endswith(".abi3.so"), extension
    # markers evaluated for the target Python, not for the Python that ran pip
    args = (
        package_dir(build_out, runtime),
        runtime.removeprefix("python"),
        project.runtime_requirements([]),
    )
    assert install.missing_requirements(*args) == []
    assert install.unneeded_distributions(*args) == []


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_zip_is_the_directory_reproducibly(build_out: Path, runtime: str, tmp_path: Path) -> None:
    directory, archive = package_dir(build_out, runtime), package_zip(build_out, runtime)
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == files_of(directory)
        assert {info.date_time for info in zf.infolist()} == {zipping.zip_date()}
    again = tmp_path / "again.zip"
    zipping.make_zip(directory, again)
    assert again.read_bytes() == archive.read_bytes()
    unzipped = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    print(f"{runtime}: {unzipped / 2**20:.1f} MiB unzipped, {archive.stat().st_size / 2**20:.1f} MiB zipped")
    # Function Compute takes code packages of at most 500 MB (100 MB zipped through the API).
    assert archive.stat().st_size < 100 * 2**20


# --- the package on the runtime's own Python --------------------------------------------

CHILD = r"""
import asyncio, importlib, json, sys

build, sample, handlers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
assert not [p for p in sys.path if "site-packages" in p or "dist-packages" in p], sys.path
sys.path.insert(0, build)

import kubeconfig_guard
assert kubeconfig_guard.__file__.startswith(build), kubeconfig_guard.__file__
for name in handlers:
    module, _, attribute = name.rpartition(".")
    assert callable(getattr(importlib.import_module(module), attribute)), name

from kubeconfig_guard.credentials import DefaultChainCredentials
credentials = asyncio.run(DefaultChainCredentials().get())


class Function:
    name = "kubeconfig-guard-event"
    handler = "kubeconfig_guard.handlers.event_handler"
    memory = 256
    timeout = 120


class Context:  # python3.12-like: no credentials, the default chain finds them
    request_id = "build-test-0001"
    region = "cn-hangzhou"
    account_id = "5000000000000001"
    function = Function()
    credentials = None


from kubeconfig_guard.handlers import event_handler

with open(sample, "rb") as f:
    result = json.loads(event_handler(f.read(), Context()))

from kubeconfig_guard.handlers import handle_summary
from kubeconfig_guard.summary import html as report_html

summary = handle_summary(None, None)
forbidden = sorted(
    m for m in sys.modules
    if m.split(".")[0] in ("typer", "rich", "pytest", "_pytest", "hypothesis")
    or m in ("kubeconfig_guard.fake", "kubeconfig_guard.cli")
    or m.startswith("kubeconfig_guard.fake.")
)
print("RESULT " + json.dumps({
    "python": sys.version.split()[0],
    "access_key_id": credentials.access_key_id,
    "forbidden_modules": forbidden,
    "result": result,
    "summary": {
        "outcome": summary.outcome.value,
        "page_start": summary.html[:15],
        "templates": type(report_html._environment().loader).__name__,
    },
}))
"""


def run_isolated(python: Path, build: Path, url: str) -> dict[str, Any]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALIBABA_CLOUD_", "KCGUARD_", "PYTHON"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env |= {
        "KCGUARD_CS_ENDPOINT": url,
        "KCGUARD_MODE": "enforce",
        "KCGUARD_REGIONS": "cn-hangzhou",
        "ALIBABA_CLOUD_ACCESS_KEY_ID": DEMO_ACCESS_KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": DEMO_ACCESS_KEY_SECRET,
    }
    process = subprocess.run(
        [str(python), "-I", "-S", "-c", CHILD, str(build), str(SAMPLE), json.dumps(template_handlers())],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=build.parent,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-5000:]
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, process.stdout[-3000:] + process.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_built_package_revokes_alice_on_the_runtime_python(
    build_out: Path, runtime: str, tmp_path: Path
) -> None:
    python = interpreter(runtime)
    if python is None:
        pytest.skip(f"no CPython {runtime.removeprefix('python')} here (pyenv or PATH)")
    final_world = tmp_path / "final-world.json"
    with fake_ack_process(WORLD, final_world) as url:
        report = run_isolated(python, package_dir(build_out, runtime), url)

    assert report["python"].startswith(runtime.removeprefix("python") + ".")
    assert report["access_key_id"] == DEMO_ACCESS_KEY_ID
    assert report["forbidden_modules"] == []
    result = report["result"]
    assert result["outcome"] == "ok", result
    assert result["mode"] == "enforce"
    alice = [a for a in result["actions"] if a["uid"] == ALICE]
    assert alice and {a["status"] for a in alice} == {"revoked"}, result["actions"]
    # the daily summary renders its page from the templates the build compiled
    assert report["summary"]["page_start"] == "<!DOCTYPE html>", report["summary"]
    assert report["summary"]["templates"] == "ModuleLoader"

    world = json.loads(final_world.read_text(encoding="utf-8"))
    clusters = [c for region in world["regions"].values() for c in region["clusters"]]
    assert not [c["cluster_id"] for c in clusters if ALICE in {k["account_id"] for k in c["kubeconfigs"]}]
    binned = {c["cluster_id"] for c in clusters if ALICE in {k["account_id"] for k in c["recycle_bin"]}}
    assert binned == {a["cluster_id"] for a in alice}


# --- two builds of one commit (slow) ---------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def export_commit(commit: str, destination: Path) -> None:
    """``git archive <commit>`` unpacked into ``destination``."""
    archive = destination.parent / f"{destination.name}.tar"
    git("archive", "--format=tar", "-o", str(archive), commit)
    destination.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(destination, filter="data")


@pytest.mark.slow
def test_two_builds_of_one_commit_are_byte_identical(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: there is no commit to export and build twice")
    runtime = "python3.12"
    commit = git("rev-parse", "HEAD")  # once: HEAD may move while this runs
    epoch = git("log", "-1", "--format=%ct", commit)
    digests = []
    for name in ("first", "second"):
        tree = tmp_path / name
        export_commit(commit, tree)
        env = {**os.environ, "SOURCE_DATE_EPOCH": epoch}
        process = subprocess.run(
            [sys.executable, str(tree / "scripts" / "build"), "--runtime", runtime],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tree,
            env=env,
        )
        assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-4000:]
        archive = tree / "dist" / project.zip_name(runtime)
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        assert f"sha256 {digest}  {archive.name}" in process.stdout
        digests.append(digest)
    assert digests[0] == digests[1], "two builds of one commit differ"
    print(f"{runtime}: both builds of {commit[:12]} are sha256 {digests[0]}")
