"""``dtmsi graph``: the topology picture, drawn by the real Graphviz ``dot``.

Every example is drawn to SVG by ``dot`` itself, and the SVG (parsed as XML)
must show each function as a node labelled with its BDF and requester ID,
each partition and PE, each controller, and one edge per interrupt route
whose label carries the vectors that ``allocation.json`` (written by a real
``dtmsi compile``, not by the graph code) says were granted. Negative
controls: ``dot`` rejects a broken graph, and the SVG check notices a
function left out of the DOT.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dtmsi.diagnostics import DiagnosticSink
from dtmsi.driver import analyse
from dtmsi.graph import GraphvizError, dot_program, render_svg, to_dot
from dtmsi.graphview import build_view
from dtmsi.options import CompileOptions
from tests.conftest import CompileExample
from tests.golden_update import EXAMPLES, ROOT, example_names

SVG = "{http://www.w3.org/2000/svg}"


def _dot_or_fail() -> None:
    if dot_program() is None:
        pytest.fail("Graphviz 'dot' is not installed; these tests need it. Install Debian's 'graphviz' "
                    "package (scripts/bootstrap.sh does).", pytrace=False)


def _dot_for(name: str) -> str:
    sink = DiagnosticSink()
    analysed = analyse(CompileOptions(input=EXAMPLES / name / f"{name}.msi"), sink)
    assert analysed is not None, [d.message for d in sink]
    return to_dot(build_view(*analysed))


def _svg_groups(svg: bytes) -> dict[str, dict[str, list[str]]]:
    """class ('node', 'edge', 'cluster') -> title -> the texts drawn in that group."""
    root = ET.fromstring(svg)
    out: dict[str, dict[str, list[str]]] = {"node": {}, "edge": {}, "cluster": {}}
    for g in root.iter(f"{SVG}g"):
        cls = g.get("class")
        if cls not in out:
            continue
        title = g.find(f"{SVG}title")
        assert title is not None and title.text is not None
        out[cls][title.text] = [t.text or "" for t in g.iter(f"{SVG}text")]
    return out


def svg_problems(svg: bytes, allocation: dict[str, object]) -> list[str]:
    """What the SVG fails to show of the allocation: a function (BDF and requester
    ID on its node), a partition, a controller, or a route with its vector count."""
    groups = _svg_groups(svg)
    nodes, edges = groups["node"], groups["edge"]
    problems: list[str] = []
    functions = allocation["functions"]
    assert isinstance(functions, list)
    for f in functions:
        node = nodes.get(f"fn/{f['bdf']}")
        if node is None:
            problems.append(f"no node for {f['bdf']} {f['name']}")
            continue
        text = "\n".join(node)
        if f"{f['bdf']} {f['name']}" not in text or f"RID {f['requester_id']:#06x}" not in text:
            problems.append(f"node of {f['bdf']} does not show its BDF, name and RID: {node}")
        if f["partition"] is not None:
            if f"partition {f['partition']}" not in text:
                problems.append(f"node of {f['bdf']} does not name its partition {f['partition']}")
            legend = nodes.get(f"partition/{f['partition']}")
            if legend is None or f["partition"] not in legend:
                problems.append(f"partition {f['partition']} missing from the legend")
        mech, granted = f["mechanism"], f["vectors_granted"]
        if mech in ("msi", "msix"):
            routes = [(t, texts) for t, texts in edges.items()
                      if t.startswith(f"fn/{f['bdf']}->") and "->fn/" not in t]  # not a PF -> VF link
            want = f"{mech}: {granted} vector{'s' if granted != 1 else ''}"
            if len(routes) != 1 or want not in routes[0][1]:
                problems.append(f"route of {f['bdf']} should say {want!r}: {routes}")
            elif f["controller"] is not None and routes[0][0] != f"fn/{f['bdf']}->ctl/{f['controller']}":
                problems.append(f"route of {f['bdf']} goes to {routes[0][0]}, not {f['controller']}")
    controllers = allocation["controllers"]
    assert isinstance(controllers, list)
    for c in controllers:
        node = nodes.get(f"ctl/{c['name']}")
        if node is None or c["name"] not in node:
            problems.append(f"controller {c['name']} missing")
    return problems


@pytest.fixture(scope="module", autouse=True)
def _needs_dot() -> None:
    _dot_or_fail()


@pytest.mark.parametrize("name", example_names())
def test_dot_draws_every_example(name: str, compile_example: CompileExample) -> None:
    allocation = json.loads((compile_example(name) / "allocation.json").read_text())
    svg = render_svg(_dot_for(name))
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg
    assert svg_problems(svg, allocation) == []


def test_pes_are_boxes_and_partitions_colours() -> None:
    svg = render_svg(_dot_for("partitions"))
    groups = _svg_groups(svg)
    clusters = groups["cluster"]
    for pe in ("pe_eth", "pe_nvme0", "pe_nic0", "pe_nic1", "pe_gpu", "pe_ssd1", "pe_ssd2"):
        assert f"PE {pe}" in clusters.get(f"cluster_pe/{pe}", []), pe
    root = ET.fromstring(svg)
    fills = {}
    for g in root.iter(f"{SVG}g"):
        title = g.find(f"{SVG}title")
        if g.get("class") == "node" and title is not None and (title.text or "").startswith("partition/"):
            shape = g.find(f"{SVG}polygon")
            assert shape is not None
            fills[title.text] = shape.get("fill")
    assert len(set(fills.values())) == 3, fills  # lpar1..3, each its own colour


def test_check_notices_a_missing_function(compile_example: CompileExample) -> None:
    """Negative control: drop one function's node from the DOT and the check says so."""
    allocation = json.loads((compile_example("qemu-virt") / "allocation.json").read_text())
    dot = _dot_for("qemu-virt")
    lines = [line for line in dot.splitlines(keepends=True) if not line.startswith('  "fn/0000:00:02.0" [')]
    lines = [line for line in lines if '"fn/0000:00:02.0" ->' not in line and '-> "fn/0000:00:02.0"' not in line]
    problems = svg_problems(render_svg("".join(lines)), allocation)
    assert problems == ["no node for 0000:00:02.0 nic0"]


def test_check_notices_a_wrong_vector_count(compile_example: CompileExample) -> None:
    allocation = json.loads((compile_example("qemu-virt") / "allocation.json").read_text())
    dot = _dot_for("qemu-virt").replace("msix: 3 vectors\\nDeviceID 0x10", "msix: 4 vectors\\nDeviceID 0x10")
    problems = svg_problems(render_svg(dot), allocation)
    assert len(problems) == 1 and "0000:00:02.0" in problems[0], problems


def test_dot_rejects_a_broken_graph() -> None:
    """Negative control: the real dot judges; a syntax error in the DOT fails."""
    broken = _dot_for("qemu-virt").replace(' -> "ctl/its"', ' -> -> "ctl/its"', 1)
    with pytest.raises(GraphvizError, match="syntax error"):
        render_svg(broken)


def test_dot_is_deterministic() -> None:
    first = _dot_for("switch-sriov")
    assert _dot_for("switch-sriov") == first
    assert render_svg(first) == render_svg(first)


def test_labels_are_escaped() -> None:
    """A name with a quote or backslash (strings can carry them) stays one DOT
    string, and a label shows it as written."""
    from dtmsi.graph import _label, _q

    tricky = 'a"b\\n'
    dot = f"digraph {{ {_q(tricky)} [label={_label(tricky, 'x')}]; }}"
    svg = render_svg(dot)
    node = _svg_groups(svg)["node"]
    assert list(node.values()) == [[tricky, "x"]]


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "dtmsi", "graph", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)


def test_cli_svg_dot_and_stdout(tmp_path: Path) -> None:
    src = str(EXAMPLES / "qemu-virt" / "qemu-virt.msi")
    proc = _cli(src)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == _dot_for("qemu-virt")
    dot_out, svg_out = tmp_path / "t.dot", tmp_path / "t.svg"
    assert _cli(src, "-o", str(dot_out)).returncode == 0
    assert dot_out.read_text() == proc.stdout
    assert _cli(src, "-o", str(svg_out)).returncode == 0
    assert svg_out.read_bytes() == render_svg(proc.stdout)
    # an unchanged picture is not rewritten (build systems see no change)
    os.utime(svg_out, ns=(10**18, 10**18))
    assert _cli(src, "-o", str(svg_out)).returncode == 0
    assert svg_out.stat().st_mtime_ns == 10**18


def test_cli_errors(tmp_path: Path) -> None:
    src = str(EXAMPLES / "qemu-virt" / "qemu-virt.msi")
    bad_suffix = _cli(src, "-o", str(tmp_path / "t.png"))
    assert bad_suffix.returncode == 2 and ".svg or .dot" in bad_suffix.stderr
    broken = tmp_path / "broken.msi"
    broken.write_text('platform "x" { msi native; }\nhost-bridge hb ecam @ 0x0 size 1M { buses 0..0;\n')
    out = tmp_path / "b.svg"
    proc = _cli(str(broken), "-o", str(out))
    assert proc.returncode == 1
    assert "error[E101]" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_readme_picture_is_current(compile_example: CompileExample) -> None:
    """docs/partitions.svg (shown in the README) still shows what the example
    compiles to; regenerate it with ``dtmsi graph examples/partitions/partitions.msi
    -o docs/partitions.svg`` when this fails."""
    allocation = json.loads((compile_example("partitions") / "allocation.json").read_text())
    assert svg_problems((ROOT / "docs" / "partitions.svg").read_bytes(), allocation) == []
