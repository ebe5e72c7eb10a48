"""Fixtures of the HTTP service tests (shared with tests/search through tests/searchkit.py)."""


import pytest
from fastapi.testclient import TestClient
from searchkit import (  # noqa: F401 - fixtures
    captions,
    random_checkpoint,
    served_ids,
    serving,
    synthetic_data,
    trained_checkpoint,
    write_video,
)

from c2kd.data.features import FeatureStore

TITLE = "Morning walk in the park"  # the title metadata of the first video with a file


@pytest.fixture(scope="session")
def served(tmp_path_factory, random_checkpoint, synthetic_data):  # noqa: F811 - fixtures
    """An index of the synthetic videos, a video folder with files for some of them, and a secret outside it."""
    from c2kd.search.building import build_index

    tmp = tmp_path_factory.mktemp("serve")
    videos = tmp / "videos"
    store = FeatureStore(synthetic_data / "features")
    with_files, ids = served_ids(store)
    for vid in with_files:  # files as long as their features: moments line up with playback
        write_video(videos / "clips" / f"{vid}.webm", seconds=len(store[vid]), fps=2)
    (tmp / "secret.txt").write_text("top secret")
    (videos / "notes.txt").write_text("not a video")
    (videos / "escape.webm").symlink_to(tmp / "secret.txt")
    index = build_index(random_checkpoint, synthetic_data, tmp / "index", video_roots=[videos], ids=ids,
                        metadata={with_files[0]: {"title": TITLE}}, progress=False)
    return tmp, index, videos


@pytest.fixture(scope="session")
def app(served):
    from c2kd.serve.app import ServeSettings, create_app

    _tmp, index, videos = served
    return create_app(ServeSettings(index=index, video_roots=[videos]))


@pytest.fixture(scope="session")
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def live_server(app):
    """The app under a real uvicorn server on loopback."""
    with serving(app) as url:
        yield url
