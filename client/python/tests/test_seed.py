"""The seed's API as its users write it (issue 14, found 7): remotemedia.core, node classes
under their `...Node` names, Pipeline() reaching the server $RM_SERVER names, and a list of
samples with sample_rate= sent as float32 audio at that rate. (test_wheel.py runs the seed's
usage example itself, as written, from the installed wheel.)"""
import json

import numpy as np
import pytest

import remotemedia
from remotemedia import AudioBuffer, Client, RemoteConfig
from remotemedia import nodes as rm_nodes
from remotemedia import _proto


def test_core_module_is_the_package_api():
    from remotemedia.core import Node, Pipeline, RemoteConfig as CoreConfig
    assert (Pipeline, Node, CoreConfig) == (remotemedia.Pipeline, remotemedia.Node,
                                            remotemedia.RemoteConfig)


def test_every_class_under_its_node_name(server_types):
    for name in server_types:
        cls = getattr(rm_nodes, name)
        assert getattr(rm_nodes, name + "Node") is cls
        assert name + "Node" in rm_nodes.__all__
    from remotemedia.nodes import GainNode, PassThroughNode
    assert GainNode(db=-6).params == {"db": -6} and GainNode(db=-6).node_type == "Gain"
    assert PassThroughNode().node_type == "PassThrough"


def test_node_names_follow_refresh(remote, tmp_path):
    old = {"node_types": [rm_nodes.schema_of("Gain").to_dict()]}
    path = tmp_path / "old_schema.json"
    path.write_text(json.dumps(old))
    try:
        rm_nodes.load_schema(str(path))
        assert rm_nodes.GainNode is rm_nodes.Gain
        with pytest.raises(AttributeError, match="no node type 'ChunkNode'"):
            rm_nodes.ChunkNode
        assert "ChunkNode" not in rm_nodes.__all__
        rm_nodes.refresh(remote)
        assert rm_nodes.ChunkNode is rm_nodes.Chunk
    finally:
        rm_nodes.load_schema()


def test_defaults_follow_rm_server(monkeypatch, server):
    monkeypatch.delenv("RM_SERVER", raising=False)
    assert RemoteConfig().address == "localhost:50051"
    assert Client().config.address == "localhost:50051"
    monkeypatch.setenv("RM_SERVER", server.address())
    assert RemoteConfig().address == server.address()
    with remotemedia.Pipeline(enable_metrics=True) as p:  # no remote: $RM_SERVER
        assert p.client.config.address == server.address()
        p.add_node(rm_nodes.PassThroughNode())
        out = p.run_sync([0.1, 0.2], sample_rate=16000)
        metrics = p.get_metrics()
    assert isinstance(out, AudioBuffer)
    assert (out.sample_rate, out.channels, out.format) == (16000, 1, "f32")
    assert out.samples.tolist() == np.float32([0.1, 0.2]).tolist()
    assert metrics is not None and metrics["total_executions"] == 1


def test_a_list_with_a_rate_is_audio():
    p = remotemedia.Pipeline(remote="h:1")
    p.add_node(rm_nodes.PassThrough(node_id="src"))
    audio = p.build_request([0.1, 0.2], sample_rate=16000).inputs["src"].audio
    assert (audio.sample_rate, audio.channels, audio.format) == (
        16000, 1, _proto.data_pb2.AUDIO_FORMAT_F32)
    assert audio.samples == np.float32([0.1, 0.2]).tobytes()
    stereo = p.build_request([[1, -1], [0.5, -0.5]], sample_rate=8000).inputs["src"].audio
    assert (stereo.channels, stereo.samples) == (2, np.float32([1, -1, 0.5, -0.5]).tobytes())
    # without a rate a list is still JSON
    assert p.build_request([0.1, 0.2]).inputs["src"].json.json == "[0.1,0.2]"
    with pytest.raises(TypeError, match="must hold numbers"):
        p.build_request([0.1, "x"], sample_rate=16000)
