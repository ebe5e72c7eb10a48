"""The service follows its index folder: changes by other processes show at once, a removed folder is 503."""

from __future__ import annotations

import shutil

from fastapi.testclient import TestClient

from c2kd.index import VideoIndex


def test_health_and_fields_follow_an_index_remove_by_another_writer(served, tmp_path):
    from c2kd.serve.app import ServeSettings, create_app

    _tmp, index, _videos = served
    copy = shutil.copytree(index, tmp_path / "index")
    with TestClient(create_app(ServeSettings(index=copy))) as client:
        before = client.get("/api/health").json()
        splits = {v["value"]: v["count"] for f in client.get("/api/fields").json()["fields"] if f["name"] == "split"
                  for v in f["values"]}
        with VideoIndex.open(copy) as other:  # another writer (`c2kd index remove` in another process)
            gone = sorted(v for v in other.ids if v.startswith("test"))[:3]
            other.remove(gone)
        after = client.get("/api/health").json()  # no search in between
        assert after["videos"] == before["videos"] - 3
        fields = {v["value"]: v["count"] for f in client.get("/api/fields").json()["fields"] if f["name"] == "split"
                  for v in f["values"]}
        assert fields == {**splits, "test": splits["test"] - 3}


def test_an_index_folder_removed_under_the_server_is_503_and_health_is_not_ok(served, tmp_path):
    from c2kd.serve.app import ServeSettings, create_app

    _tmp, index, _videos = served
    copy = shutil.copytree(index, tmp_path / "index")
    with TestClient(create_app(ServeSettings(index=copy))) as client:
        assert client.get("/api/search", params={"q": "a dog"}).status_code == 200
        shutil.rmtree(copy)
        for _ in range(2):  # the first answer and the ones after it: never stale results
            for path, params in (("/api/search", {"q": "a dog"}), ("/api/health", {}), ("/api/fields", {}),
                                 ("/api/moments", {"video_id": "test00001", "q": "a dog"})):
                response = client.get(path, params=params)
                assert response.status_code == 503, (path, response.status_code, response.text)
                message = response.json()["error"]
                assert str(copy) in message and "restore it" in message and "build one" not in message
