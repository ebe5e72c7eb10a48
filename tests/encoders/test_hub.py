"""c2kd.encoders.hub: hub ids that are not in the local cache fail fast, naming the fix."""

import pytest

from c2kd.errors import ConfigError


def test_uncached_hub_id_fails_fast_naming_a_local_folder(monkeypatch):
    from c2kd.encoders.text.loading import build_text_backbone

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="local folder"):
        build_text_backbone("clip:someone/not-a-cached-clip")
    with pytest.raises(ConfigError, match="local folder"):
        build_text_backbone("st:someone/not-a-cached-mclip")
