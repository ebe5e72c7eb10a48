"""The word bag: what counts as a word, stable buckets, the mean over a caption's words, and a silent start."""

import subprocess
import sys
import unicodedata

import numpy as np
import torch

from c2kd.encoders.words import WordBag, WordBagConfig, word_bucket, words


def test_words_are_casefolded_nfkc_runs_of_word_characters():
    assert words("Zwei Hunde rennen, durch den Schnee!") == ["zwei", "hunde", "rennen", "durch", "den", "schnee"]
    assert words("Die STRAẞE") == ["die", "strasse"]  # case folding, not just lower-casing
    assert words("Un homme fait du vélo.") == ["un", "homme", "fait", "du", "vélo"]
    composed = "Malá holčička"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed and words(decomposed) == words(composed) == ["malá", "holčička"]
    assert words("  ...  ") == []


def test_word_buckets_are_in_range_and_the_same_in_every_process():
    vocabulary = ["hunde", "holčička", "vélo", "dog", "a"]
    buckets = [word_bucket(w, 1000) for w in vocabulary]
    assert all(1 <= b < 1000 for b in buckets)  # row 0 is padding
    code = f"from c2kd.encoders.words import word_bucket; print([word_bucket(w, 1000) for w in {vocabulary!r}])"
    for hash_seed in ("1", "2"):  # Python's own str hash changes per process; ours must not
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": hash_seed, "PATH": ""})
        assert out.stdout.strip() == str(buckets)


def test_a_caption_is_the_mean_of_its_word_rows_and_a_caption_without_words_is_zero():
    torch.manual_seed(0)
    bag = WordBag(WordBagConfig(buckets=50, dim=4, max_words=3))
    texts = ["dog dog cat", "a b c d e", "!!!"]
    ids = bag.prepare(texts)["ids"]
    assert ids.shape == (3, 3) and (ids[2] == 0).all()
    out = bag(ids).detach().numpy()
    table = bag.table.weight.detach().numpy()
    for row, text in zip(out, texts):
        kept = words(text)[:3]
        expected = np.mean([table[word_bucket(w, 50)] for w in kept], axis=0) if kept else np.zeros(4)
        np.testing.assert_allclose(row, expected, atol=1e-6)


def test_a_step_touches_only_the_rows_of_the_words_in_the_batch():
    torch.manual_seed(0)
    bag = WordBag(WordBagConfig(buckets=50, dim=4))
    before = bag.table.weight.detach().clone()
    optimizer = torch.optim.SparseAdam(list(bag.parameters()), lr=0.1)
    bag(bag.prepare(["dog cat"])["ids"]).sum().backward()
    assert bag.table.weight.grad is not None and bag.table.weight.grad.is_sparse
    optimizer.step()
    changed = set(torch.nonzero((bag.table.weight != before).any(dim=1)).flatten().tolist())
    assert changed == {word_bucket("dog", 50), word_bucket("cat", 50)}
