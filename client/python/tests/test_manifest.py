"""Explicit DAGs (connect, ports, fan-in, several sources and sinks) and manifests saved to
and loaded from the JSON form the server's tools read."""
import json

import numpy as np
import pytest

from conftest import sine
from remotemedia import InvalidArgument, Node, Pipeline
from remotemedia.nodes import ChannelMix, Gain, PassThrough


def diamond(remote=None):
    """src -> (a: -6 dB, b: -12 dB) -> mix (fan-in, emits both in connection order)."""
    p = Pipeline("diamond", remote=remote, enable_metrics=True)
    p.add_node(PassThrough(node_id="src"))
    p.add_node(Gain(db=-6.020599913279624, node_id="a"))           # chained from src
    p.add_node(Gain(db=-12.041199826559248, node_id="b"), after="src")
    p.add_node(PassThrough(node_id="mix"), after=["a", "b"])
    return p


def test_diamond_runs(remote):
    x = sine(800, 8000)
    with diamond(remote) as p:
        assert p.sources() == ["src"] and p.sinks() == ["mix"]
        result = p.execute_sync(x, sample_rate=8000)
    items = result.outputs["mix"]
    assert len(items) == 2
    np.testing.assert_allclose(items[0].samples, x * 0.5, atol=1e-6)
    np.testing.assert_allclose(items[1].samples, x * 0.25, atol=1e-6)
    assert [n["node_id"] for n in result.metrics["node_metrics"]] == ["src", "a", "b", "mix"]


def test_manifest_json_form(tmp_path):
    p = diamond()
    p.connect("a", "mix")  # already there: no duplicate edge
    path = tmp_path / "diamond.json"
    p.save(path)
    assert json.loads(path.read_text()) == {
        "name": "diamond",
        "nodes": [
            {"id": "src", "node_type": "PassThrough", "params": {}},
            {"id": "a", "node_type": "Gain", "params": {"db": -6.020599913279624}},
            {"id": "b", "node_type": "Gain", "params": {"db": -12.041199826559248}},
            {"id": "mix", "node_type": "PassThrough", "params": {}},
        ],
        "connections": [
            {"from": "src", "to": "a"},
            {"from": "src", "to": "b"},
            {"from": "a", "to": "mix"},
            {"from": "b", "to": "mix"},
        ],
    }


def test_save_load_round_trip(tmp_path, remote):
    original = diamond(remote)
    original.connect("b", "mix")  # existing edge
    original.add_node(ChannelMix(mode="stereo", node_id="wide"), chain=False)
    original.connect("mix", "wide", from_port="out", to_port="in")
    path = tmp_path / "m.json"
    original.save(path)
    loaded = Pipeline.load(path, remote=remote, enable_metrics=True)
    assert loaded.to_dict() == original.to_dict()
    assert loaded.connections[-1] == ("mix", "wide", "out", "in")
    assert Pipeline.from_json(loaded.to_json()).to_dict() == original.to_dict()
    x = sine(100, 8000)
    a = original.execute_sync(x, sample_rate=8000)
    b = loaded.execute_sync(x, sample_rate=8000)
    assert list(a.outputs) == list(b.outputs) == ["wide"]
    for u, v in zip(a.outputs["wide"], b.outputs["wide"]):
        assert u.samples.shape == (100, 2)
        np.testing.assert_array_equal(u.samples, v.samples)
    original.close_sync()
    loaded.close_sync()


def test_load_accepts_what_the_server_reads():
    p = Pipeline.from_dict({"nodes": [{"id": "g", "node_type": "Gain", "params": "{\"db\": 3}"},
                                      {"id": "h", "node_type": "Gain"}],
                            "connections": [{"from": "g", "to": "h", "to_port": "in"}]})
    assert p.name == "pipeline"
    assert p.node("g").params == {"db": 3} and p.node("h").params == {}
    assert p.connections == [("g", "h", "", "in")]


@pytest.mark.parametrize("manifest, message", [
    ({"nodes": [], "extra": 1}, "manifest: unknown key 'extra'"),
    ({"nodes": {}}, "'nodes' must be an array"),
    ({"nodes": [{"node_type": "Gain"}]}, "nodes[0]: missing 'id'"),
    ({"nodes": [{"id": "g", "node_type": 5}]}, "nodes[0]: 'node_type' must be a string"),
    ({"nodes": [{"id": "g", "node_type": "Gain", "parms": {}}]}, "nodes[0]: unknown key 'parms'"),
    ({"nodes": [{"id": "g", "node_type": "Gain", "params": [1]}]}, "params must be a JSON object"),
    ({"nodes": [{"id": "g", "node_type": "Gain"}, {"id": "g", "node_type": "Gain"}]},
     "duplicate node id 'g'"),
    ({"nodes": [{"id": "g", "node_type": "Gain"}], "connections": [{"from": "g", "to": "x"}]},
     "node 'x' is not in this pipeline"),
    ({"nodes": [], "connections": [{"from": "g"}]}, "connections[0]: missing 'to'"),
])
def test_load_rejects(manifest, message):
    with pytest.raises(ValueError) as e:
        Pipeline.from_dict(manifest)
    assert message in str(e.value)


def test_load_validates_params_unless_told_not_to(remote):
    bad = {"name": "bad", "nodes": [{"id": "g", "node_type": "Gain", "params": {"db": 61}}]}
    with pytest.raises(InvalidArgument) as e:
        Pipeline.from_dict(bad)
    assert (e.value.node_id, e.value.field, e.value.from_server) == ("g", "db", False)
    with Pipeline.from_dict(bad, remote=remote, validate=False) as p:
        with pytest.raises(InvalidArgument) as e:
            p.run_sync(np.float32([0]), sample_rate=8000)
    assert (e.value.node_id, e.value.field, e.value.from_server) == ("g", "db", True)


def test_several_sources_and_chosen_outputs(remote):
    with Pipeline(remote=remote) as p:
        p.add_node(Gain(db=0, node_id="left"))
        p.add_node(Gain(db=-6.020599913279624, node_id="right"), chain=False)
        p.add_node(PassThrough(node_id="both"), after=["left", "right"])
        with pytest.raises(ValueError, match="2 source nodes"):
            p.run_sync(np.float32([1]), sample_rate=8000)
        r = p.execute_sync(inputs={"left": (np.float32([1.0]), 8000),
                                   "right": (np.float32([1.0]), 8000)},
                           output_nodes=["left", p.node("both")])
    assert sorted(r.outputs) == ["both", "left"]
    assert r.output("left").samples.tolist() == [1.0]
    assert [i.samples.tolist() for i in r.outputs["both"]] == [[1.0], [0.5]]


def test_graph_errors_from_the_server(remote):
    with Pipeline(remote=remote) as p:
        p.add_node(Gain(db=0, node_id="g")).add_node(Gain(db=0, node_id="h"))
        p.connect("h", "g")  # a cycle
        with pytest.raises(InvalidArgument) as e:
            p.run_sync(inputs={"g": (np.float32([0]), 8000)})
    assert e.value.kind == "invalid_manifest"
    assert "cycle" in e.value.message
    with Pipeline(remote=remote) as p:
        p.add_node(Gain(db=0, node_id="g")).add_node(Gain(db=0, node_id="h"), chain=False)
        p.connect("g", "h", from_port="nope")
        with pytest.raises(InvalidArgument) as e:
            p.run_sync(np.float32([0]), sample_rate=8000)
    assert "nope" in e.value.message


def test_building_rules():
    p = Pipeline()
    g = Gain(db=1)
    p.add_node(g)
    with pytest.raises(ValueError, match="already in the pipeline"):
        p.add_node(g)
    with pytest.raises(ValueError, match="duplicate node id 'gain'"):
        p.add_node(Gain(node_id="gain"))
    with pytest.raises(ValueError, match="must be 1-64 characters"):
        Gain(node_id="bad id")
    with pytest.raises(TypeError):
        p.add_node(42)
    p.add_node("PassThrough")
    assert [n.id for n in p.nodes] == ["gain", "pass_through"]
    p.disconnect("gain", "pass_through")
    assert p.connections == []
    with pytest.raises(ValueError, match="no connection"):
        p.disconnect("gain", "pass_through")
    assert "gain" in p and g in p and len(p) == 2
    assert Node("Whatever", {"k": np.float32(0.5)}).params == {"k": 0.5}  # unknown type: unchecked


def test_a_failed_add_node_changes_nothing():
    """Regression (P10): add_node(g2, after="nope") raised but had already given g2 the id
    "gain_2"; a failed add_node now leaves the node and the pipeline as they were."""
    p = Pipeline()
    p.add_node(Gain(db=-6))
    g2 = Gain(db=-3)
    for after in ("nope", ["gain", "nope"]):
        with pytest.raises(ValueError, match="^node 'nope' is not in this pipeline$"):
            p.add_node(g2, after=after)
        assert g2.id is None and g2._pipeline is None and g2 not in p.nodes
        assert [n.id for n in p.nodes] == ["gain"] and p.connections == []
    p.add_node(g2, after="gain")
    assert g2.id == "gain_2" and p.connections == [("gain", "gain_2", "", "")]


def test_a_node_belongs_to_one_pipeline():
    """Regression (P10): the same Node could be added to two pipelines, which then shared
    its id and params. The second add_node raises; a deep copy can be added."""
    import copy
    p, q = Pipeline("first"), Pipeline("second")
    g = Gain(db=-6)
    p.add_node(g)
    with pytest.raises(ValueError, match=r"^node 'gain' is already in pipeline 'first': a node "
                       r"belongs to one pipeline; add a copy \(copy.deepcopy\(node\)\)$"):
        q.add_node(g)
    assert len(q) == 0 and g.id == "gain" and p.node("gain") is g
    twin = copy.deepcopy(g)
    q.add_node(twin)
    assert q.node("gain") is twin and twin.params == g.params and twin.params is not g.params
    with pytest.raises(ValueError, match="^node gain is already in the pipeline$"):
        p.add_node(g)


def test_an_added_node_pickles():
    """Regression: a node added to a pipeline kept its owner as a weak reference, and
    pickling it raised "TypeError: cannot pickle 'weakref...' object" (it pickled before
    nodes knew their pipeline). A pickled or copied node is a new node no pipeline holds:
    it comes back without the owner and can be added to another pipeline."""
    import copy
    import pickle
    p = Pipeline("first")
    g, n = Gain(db=-6), Node("PassThrough", node_id="pt")
    p.add_node(g).add_node(n)
    for node in (g, n):
        back = pickle.loads(pickle.dumps(node))
        assert type(back) is type(node) and back == node and back is not node
        assert back.to_dict() == node.to_dict() and back._pipeline is None
    q = Pipeline("second")
    q.add_node(pickle.loads(pickle.dumps(g))).add_node(copy.deepcopy(n))
    assert q.to_dict()["nodes"] == p.to_dict()["nodes"]
    assert q.connections == p.connections
    assert p.node("gain") is g and g._pipeline() is p  # the original keeps its owner
    with pytest.raises(ValueError, match="^node 'gain' is already in pipeline 'first'"):
        Pipeline("third").add_node(g)


def test_a_self_loop_is_refused():
    """Regression (P10): connect("gain", "gain") was accepted and the server then answered
    "the pipeline has 0 source nodes ()". It is a ValueError here, also from a manifest."""
    p = Pipeline()
    p.add_node(Gain(db=-6))
    with pytest.raises(ValueError, match="^connect: 'gain' -> 'gain' is a self-loop; a "
                       "pipeline is acyclic$"):
        p.connect("gain", "gain")
    assert p.connections == []
    with pytest.raises(ValueError, match="^connect: 'g' -> 'g' is a self-loop"):
        Pipeline.from_dict({"nodes": [{"id": "g", "node_type": "Gain"}],
                            "connections": [{"from": "g", "to": "g"}]})


def test_output_nodes_takes_one_node_or_id(remote):
    """Regression (QA 6): output_nodes="gain" was split into 'g', 'a', ...; a Node was 'not
    iterable'. One id or Node is a list of one, as add_node(after=) reads it."""
    x = sine(160, 16000)
    with Pipeline(remote=remote) as p:
        p.add_node(Gain(db=0, node_id="gain")).add_node(Gain(db=-6.020599913279624, node_id="g2"))
        for one in ("gain", p.node("gain"), ["gain"], (p.node("gain"),)):
            assert list(p.build_request(x, 16000, output_nodes=one).output_nodes) == ["gain"]
            assert list(p._stream_init(one, None, 0, 0).init.output_nodes) == ["gain"]
            r = p.execute_sync(x, sample_rate=16000, output_nodes=one)
            assert list(r.outputs) == ["gain"]
        results = list(p.stream_sync([x], sample_rate=16000, output_nodes="gain"))
        assert {k for r in results for k in r.outputs} == {"gain"}
        assert list(p.build_request(x, 16000, output_nodes=iter(["g2", "gain"])).output_nodes) \
            == ["g2", "gain"]
        assert list(p.build_request(x, 16000, output_nodes=[]).output_nodes) == []
        with pytest.raises(TypeError, match="^output_nodes must be a node, a node id or a list "
                           "of them, not int$"):
            p.build_request(x, 16000, output_nodes=3)
        with pytest.raises(TypeError, match="^output_nodes must be a node, a node id or a list "
                           "of them, not bytes$"):
            p.session(output_nodes=b"gain")
        with pytest.raises(TypeError, match=r"^output_nodes\[1\] must be a node id \(str\) or a "
                           "Node, not NoneType$"):
            p.build_request(x, 16000, output_nodes=["gain", None])
        with pytest.raises(ValueError, match="^node 'other' is not in this pipeline$"):
            p.run_sync(x, sample_rate=16000, output_nodes=Gain(node_id="other"))


def test_a_cycle_is_named_not_inputs():
    """Regression (QA 8): a pipeline whose connections form a cycle has no source node; the
    client said "the pipeline has 0 source nodes (): pass inputs=...", which cannot help."""
    x = np.float32([0])
    p = Pipeline()
    p.add_node(Gain(node_id="a")).add_node(Gain(node_id="b"))
    p.connect("b", "a")
    with pytest.raises(ValueError, match=r"^the pipeline has no source node: its connections "
                       r"form a cycle \(a -> b -> a\)$"):
        p.run_sync(x, sample_rate=8000)
    # the walk starts outside the cycle (t), and names the cycle from its first-added node
    q = Pipeline()
    q.add_node(PassThrough(node_id="t"))
    q.add_node(Gain(node_id="c"), chain=False).add_node(Gain(node_id="d"))
    q.add_node(Gain(node_id="e")).connect("e", "c").connect("c", "t")
    with pytest.raises(ValueError, match=r"^the pipeline has no source node: its connections "
                       r"form a cycle \(c -> d -> e -> c\)$"):
        q.build_request(x, 8000)
