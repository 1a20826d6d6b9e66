"""A second, independent verifier (Node 20, tests/verifier-node/verify.js, written from
docs/protocol.md alone) must reach the same verdict and reason code as config_lib on
every vector in tests/vectors/envelopes.json.

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
VECTOR_FILE = Path(__file__).parents[1] / "vectors" / "envelopes.json"


@pytest.fixture(scope="module")
def node_results() -> dict[str, dict[str, Any]]:
    node = shutil.which("node")
    assert node, "Node 20 is required (tests/verifier-node): install it, then `make test`"
    assert (NODE_DIR / "node_modules" / "canonicalize").is_dir(), (
        "tests/verifier-node has no node_modules: run `make test` (or `npm ci` there)"
    )
    done = subprocess.run(
        [node, str(NODE_DIR / "verify.js"), str(VECTOR_FILE)],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    return {r["name"]: r for r in results}


def test_node_verifier_agrees_on_every_vector(node_results: dict[str, dict[str, Any]]) -> None:
    cases = VECTORS["cases"]
    assert len(node_results) == len(cases)
    differ = []
    for case in cases:
        node = node_results[case["name"]]
        python = run_case(case)
        if (node["verdict"], node["reason"]) != python or python != (
            case["verdict"],
            case["reason"],
        ):
            differ.append(
                f"{case['name']}: vector {case['verdict']}/{case['reason']}, "
                f"config_lib {python[0]}/{python[1]}, node {node['verdict']}/{node['reason']}"
            )
    assert not differ, f"{len(differ)} of {len(cases)} differ:\n" + "\n".join(differ)
