"""No episode is lost while the server is down: the client's spool outlives a server restart
(and a robot restart) and uploads once the server is back."""

from __future__ import annotations

import time

from serve_helpers import make_episode

from ramp.deploy import control
from ramp.deploy.client import EpisodeUploader, RampClient
from ramp.platform.episodes import EpisodeStore


def test_the_spool_survives_a_server_restart_and_uploads_afterwards(server, tmp_path):
    spool = tmp_path / "spool"
    ids = [f"robot-b-spool-{i}" for i in range(3)]
    control.stop()  # `ramp serve` is stopped: the routes are gone
    try:
        client = RampClient(server.url, server.tokens["robot-b"], timeout=10)
        uploader = EpisodeUploader(client, spool, retry_initial_s=0.05, retry_max_s=0.5)
        for i, eid in enumerate(ids):
            uploader.submit(make_episode(eid, steps=4, seed=i))
        time.sleep(1.5)  # several attempts, all refused
        assert sorted(uploader.pending()) == ids and uploader.uploaded == []
        assert uploader.last_error
        uploader.close()  # the robot's process ends too; the spool stays on its disk
    finally:
        control.start(server.cfg, checkpoint=server.versions[0])  # `ramp serve` again
    store = EpisodeStore(server.root, {"arm": server.cfg.embodiments["arm"]})
    assert all(store.lookup(eid) is None for eid in ids)
    uploader = EpisodeUploader(RampClient(server.url, server.tokens["robot-b"]), spool)
    assert uploader.flush(timeout=60), uploader.last_error
    uploader.close()
    for eid in ids:
        entry = store.lookup(eid)
        assert entry is not None and entry.source == "robot-robot-b"
    assert list(spool.glob("*.msgpack")) == [] and uploader.rejected() == []
