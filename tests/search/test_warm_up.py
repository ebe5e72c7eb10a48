"""An opened engine has already run one query: the first real one (and a server's first answer) pays no loading."""

from __future__ import annotations

from searchkit import make_index_dataset

from c2kd.index import VideoIndex
from c2kd.search import model as search_model
from c2kd.search.engine import SearchEngine


def test_open_runs_one_query_through_the_text_tower_and_the_index(tmp_path, monkeypatch, synthetic_data,
                                                                  random_checkpoint):
    index_dir = make_index_dataset(tmp_path, synthetic_data, random_checkpoint)
    embedded: list[list[str]] = []
    searched: list[int] = []
    load = search_model.load_search_model
    index_search = VideoIndex.search

    def watched_model(*args, **kwargs):
        model = load(*args, **kwargs)
        embed_texts = model.embed_texts

        def counting(texts):
            embedded.append(list(texts))
            return embed_texts(texts)

        model.embed_texts = counting
        return model

    def counting_search(self, queries, *args, **kwargs):
        searched.append(len(queries))
        return index_search(self, queries, *args, **kwargs)

    monkeypatch.setattr(search_model, "load_search_model", watched_model)
    monkeypatch.setattr(VideoIndex, "search", counting_search)
    engine = SearchEngine.open(index_dir)
    try:
        assert embedded == [["warm up"]] and searched == [1]
        assert engine.embedder._thread is not None and engine.embedder._thread.is_alive()
        response = engine.search("a dog runs", k=3)
        assert embedded[1:] == [["a dog runs"]] and searched == [1, 1] and len(response.hits) == 3
    finally:
        engine.close()
