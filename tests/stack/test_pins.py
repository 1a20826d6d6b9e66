"""constraints.txt (written by `make lock`) pins every dependency pyproject.toml declares;
debian-packages.txt (written by `make lock-debian`) every Debian package the Makefile
installs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
            assert match, f"not an exact pin: {line!r}"
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def test_every_declared_dependency_is_pinned_to_a_version_it_accepts() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    pins = _pins()
    own = canonicalize_name(project["name"])
    problems = []
    for text in declared:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name == own:
            continue
        if name not in pins:
            problems.append(f"{req.name} is not in constraints.txt")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}=={pins[name]} does not satisfy {text!r}")
    assert not problems, "; ".join(problems) + ": run 'make lock' and commit constraints.txt"


def test_the_makefile_installs_with_the_constraints() -> None:
    makefile = (REPO / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line]
    assert installs
    for line in installs:
        assert "-c $(CONSTRAINTS)" in line or "lock" in line or "$$tmp" in line, line
    assert re.search(r"^lock:", makefile, re.MULTILINE)


def test_the_environment_running_the_tests_is_the_pinned_one() -> None:
    """What `make` installed is exactly constraints.txt: every installed distribution is
    pinned there, at that version (a venv that drifted, or a dependency that slipped in
    without `make lock`, fails here)."""
    from importlib.metadata import distributions

    pins = _pins()
    own = canonicalize_name(
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    )
    problems = []
    for dist in distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in (own, "wheel"):  # ourselves; wheel is left out by `make lock`
            continue
        if name not in pins:
            problems.append(f"{name} {dist.version} is installed but not pinned")
        elif Version(dist.version) != pins[name]:
            problems.append(f"{name} is {dist.version}, pinned {pins[name]}")
    assert not problems, "; ".join(sorted(problems))


def test_every_debian_package_the_makefile_installs_is_pinned() -> None:
    makefile = (REPO / "Makefile").read_text()
    listed = re.search(r"^DEB_PACKAGES := (.+)$", makefile, re.M)
    assert listed, "the Makefile has no DEB_PACKAGES line"
    named = set(listed[1].split())
    installed: set[str] = set()
    for call in re.findall(r"\$\(call (?:need_deb,[^,)]+|apt_install),([^)]+)\)", makefile):
        installed.update(word for word in call.split() if not word.startswith("$("))
    pins: dict[str, str] = {}
    for line in (REPO / "debian-packages.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("=")
            assert version, f"not an exact pin: {line!r}"
            pins[name] = version
    assert installed, "no apt installs found in the Makefile: the pattern is stale"
    assert installed <= named, f"installed but not in DEB_PACKAGES: {installed - named}"
    assert set(pins) == named, f"debian-packages.txt differs from DEB_PACKAGES: {set(pins) ^ named}"
