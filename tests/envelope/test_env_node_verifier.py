"""A second, independent verifier (Node 20, tests/verifier-node/verify.js, written from
docs/protocol.md alone) must reach the same verdict and reason code as config_lib on
every vector: every case of tests/vectors/envelopes.json (compared with config_lib's own
verdict here), and of reports.json and keysets.json (whose own tests hold config_lib and
the manager to the same expected verdicts).

``make test`` installs its one pinned dependency (``npm ci`` in tests/verifier-node).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.envelope.test_env_vectors import VECTORS, run_case

NODE_DIR = Path(__file__).parents[1] / "verifier-node"
VECTOR_DIR = Path(__file__).parents[1] / "vectors"


@pytest.fixture(scope="module")
def node_results() -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "Node 20 is required (tests/verifier-node): install it, then `make test`"
    assert (NODE_DIR / "node_modules" / "canonicalize").is_dir(), (
        "tests/verifier-node has no node_modules: run `make test` (or `npm ci` there)"
    )
    done = subprocess.run(
        [node, str(NODE_DIR / "verify.js"), str(VECTOR_DIR)],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _verdict(result: dict[str, Any]) -> tuple[str, str | None]:
    return result["verdict"], result["reason"]


def test_node_verifier_agrees_with_config_lib_on_every_envelope_vector(
    node_results: list[dict[str, Any]],
) -> None:
    node = {r["name"]: r for r in node_results if r["file"] == "envelopes.json"}
    cases = VECTORS["cases"]
    assert len(node) == len(cases)
    differ = []
    for case in cases:
        python, vector = run_case(case), (case["verdict"], case["reason"])
        if not _verdict(node[case["name"]]) == python == vector:
            differ.append(
                f"{case['name']}: vector {vector}, config_lib {python}, "
                f"node {_verdict(node[case['name']])}"
            )
    assert not differ, f"{len(differ)} of {len(cases)} differ:\n" + "\n".join(differ)


def test_node_verifier_agrees_on_every_other_vector_file(
    node_results: list[dict[str, Any]],
) -> None:
    others = [r for r in node_results if r["file"] != "envelopes.json"]
    files = {p.name for p in VECTOR_DIR.glob("*.json")} - {"envelopes.json"}
    assert {r["file"].split("#")[0] for r in others} == files  # every file is run
    differ = [
        f"{r['file']} {r['name']}: node {_verdict(r)}, vector {tuple(r['expected'].values())}"
        for r in others
        if _verdict(r) != (r["expected"]["verdict"], r["expected"]["reason"])
    ]
    assert not differ, f"{len(differ)} of {len(others)} differ:\n" + "\n".join(differ)
