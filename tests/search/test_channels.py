"""The shown + said ranking rule: standardised channels, a learned weight, found-by-both above found-by-one,
overlapping moments of the two channels merged; checked against hand-computed cases and properties."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from c2kd.errors import DataError
from c2kd.search.channels import Fusion, calibrate, fuse_moments, fuse_videos, fused_video_scores, query_z


def test_videos_hand_computed():
    fusion = Fusion(shown_mean=0.2, shown_std=0.1, said_mean=0.5, said_std=0.2, said_weight=0.25)
    shown = {"a": 0.4, "b": 0.3, "c": 0.1}          # z: 2, 1, -1
    said = {"b": 0.9, "d": 0.7}                     # z: 2, 1
    ranked = fuse_videos(shown, said, fusion)
    # a channel that cannot score a video gives it 0: a = .75*2 = 1.5; b = .75*1 + .25*2 = 1.25;
    # c = .75*-1 = -.75; d = .25*1 = .25
    assert [(v, round(s, 6), by) for v, s, by in ranked] == [("a", 1.5, "shown"), ("b", 1.25, "both"),
                                                               ("d", 0.25, "said"), ("c", -0.75, "shown")]
    assert [v for v, _, _ in fuse_videos(shown, said, fusion, "said")] == ["b", "d"]
    assert [v for v, _, _ in fuse_videos(shown, said, fusion, "shown", k=2)] == ["a", "b"]
    with pytest.raises(DataError, match="unknown channel 'heard'"):
        fuse_videos(shown, said, fusion, "heard")


def test_found_by_both_ranks_above_found_by_one_that_scores_alike():
    fusion = Fusion(shown_mean=0.3, shown_std=0.1, said_mean=0.4, said_std=0.1, said_weight=0.5)
    ranked = fuse_videos({"both": 0.5, "shown-only": 0.5, "low": 0.1}, {"both": 0.6, "said-only": 0.6, "x": 0.2},
                         fusion)
    order = [v for v, _, _ in ranked]
    assert order.index("both") < order.index("shown-only") and order.index("both") < order.index("said-only")


def test_moments_of_both_channels_merge_where_they_overlap():
    fusion = Fusion(said_weight=0.5)
    shown = [(0.0, 4.0, 0.3), (10.0, 14.0, 0.2)]
    said = [(1.0, 4.5, 0.8, "hier ist die Karte"), (20.0, 22.0, 0.5, "tschüss")]
    moments = fuse_moments(shown, said, fusion)
    assert [(m.start, m.end, m.found_by, m.text) for m in moments] == [
        (0.0, 4.5, "both", "hier ist die Karte"), (20.0, 22.0, "said", "tschüss"), (10.0, 14.0, "shown", "")]
    assert [m.rank for m in moments] == [1, 2, 3]
    assert [m.found_by for m in fuse_moments(shown, said, fusion, "shown")] == ["shown", "shown"]


@pytest.mark.parametrize("seed", [0, 1])
def test_calibration_is_blind_to_each_channels_scale_and_learns_which_channel_to_trust(seed):
    rng = np.random.default_rng(seed)
    q = n = 60
    gold = rng.permutation(n)
    talks = rng.random(n) < 0.5                       # half the videos speak, half only show
    shown = rng.normal(0.2, 0.05, (q, n))
    said = np.where(talks, rng.normal(0.5, 0.1, (q, n)), np.nan)
    for i, g in enumerate(gold):
        if talks[g]:
            said[i, g] += 0.4                          # the words say it, the picture ("a person talking") not
        else:
            shown[i, g] += 0.2                         # the picture says it, nobody speaks
    fusion = calibrate(shown, said, gold)

    def r1(channel: str, f: Fusion = fusion, a: np.ndarray = shown, b: np.ndarray = said) -> float:
        hits = 0
        for i, g in enumerate(gold):
            found = fuse_videos({str(v): a[i, v] for v in range(n)},
                                {str(v): b[i, v] for v in range(n) if talks[v]}, f, channel, k=1)
            hits += found[0][0] == str(g)
        return hits / q

    assert r1("both") > max(r1("shown"), r1("said")) + 0.2
    # an affine change of one channel's scores (another encoder's scale) is undone by its standardisation
    again = calibrate(shown * 3.0 + 1.0, said * 0.5 - 0.2, gold)
    assert again.said_weight == fusion.said_weight
    assert again.shown_mean == pytest.approx(fusion.shown_mean * 3 + 1) and again.said_std == pytest.approx(
        fusion.said_std * 0.5)
    # a said channel that says nothing about the answers costs nothing once calibrated
    noise = np.where(np.isfinite(said), rng.normal(0.5, 0.1, (q, n)), np.nan)
    learned = calibrate(shown, noise, gold)
    assert r1("both", learned, shown, noise) >= r1("shown", learned, shown, noise)
    assert learned.said_weight < fusion.said_weight


def test_calibration_refuses_mismatched_matrices():
    with pytest.raises(DataError, match=r"two \[Q, N\] score matrices"):
        calibrate(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(2, int))


def test_the_max_rule_lets_the_stronger_channel_decide_hand_computed():
    fusion = Fusion(shown_mean=0.2, shown_std=0.1, said_mean=0.5, said_std=0.2, said_weight=0.25, rule="max")
    shown = {"a": 0.4, "b": 0.3, "c": 0.1}          # z: 2, 1, -1
    said = {"b": 0.9, "d": 0.7, "c": 0.1}           # z: 2, 1, -2
    # a = .75*2 = 1.5; b = max(.75*1, .25*2) = .75; c = max(-.75, -.5) = -.5; d (said only) = .25
    assert [(v, round(s, 6), by) for v, s, by in fuse_videos(shown, said, fusion)] == [
        ("a", 1.5, "shown"), ("b", 0.75, "both"), ("d", 0.25, "said"), ("c", -0.5, "both")]
    assert Fusion.from_dict({**fusion.to_dict(), "how": "val"}) == fusion  # kept in said.json as it is
    assert Fusion.from_dict(None).rule == "sum"
    with pytest.raises(DataError, match="unknown fusion rule 'product'"):
        Fusion.from_dict({"rule": "product"})


def test_calibration_chooses_between_sum_and_max_on_val():
    rng = np.random.default_rng(3)
    q = n = 80
    gold = rng.permutation(n)
    shown = rng.normal(0.0, 1.0, (q, n))
    said = rng.normal(0.0, 1.0, (q, n))
    for i, g in enumerate(gold):  # each answer is found by one channel, strongly: the max of the two finds it
        (shown if i % 2 else said)[i, g] += 6.0
        (said if i % 2 else shown)[i, g] -= 3.0
    assert calibrate(shown, said, gold).rule == "max"
    assert calibrate(shown, said, gold, rules=("sum",)).rule == "sum"


def test_per_query_standardisation_hand_computed():
    fusion = Fusion(said_weight=0.5, scale="query")
    shown = {"a": 0.5, "b": 0.3, "c": 0.1}          # mean .3, std sqrt(.08 / 3): z 1.224745, 0, -1.224745
    said = {"b": 0.9, "d": 0.5}                     # mean .7, std .2: z 1, -1
    # a: .5 * 1.224745 = .612372; b: .5 * 1 = .5; c: -.612372; d was not returned by the shown channel, which ranks
    # every video: it gets the lowest shown z, so .5 * -1.224745 + .5 * -1 = -1.112372
    assert [(v, round(s, 6), by) for v, s, by in fuse_videos(shown, said, fusion)] == [
        ("a", 0.612372, "shown"), ("b", 0.5, "both"), ("c", -0.612372, "shown"), ("d", -1.112372, "said")]
    # blind to each query's own affine change of a channel's scores (the val statistics play no part)
    again = fuse_videos({v: 10 * s - 3 for v, s in shown.items()}, {v: s / 4 for v, s in said.items()},
                        replace(fusion, shown_mean=5.0, said_std=9.0))
    assert [(v, round(s, 6)) for v, s, _ in again] == [(v, round(s, 6)) for v, s, _ in fuse_videos(shown, said,
                                                                                                      fusion)]
    assert [v for v, _, _ in fuse_videos(shown, said, fusion, "said")] == ["b", "d"]


def test_query_z_uses_each_querys_best_pool_scores():
    rng = np.random.default_rng(0)
    scores = rng.normal(0.3, 0.1, (3, 80))
    scores[1, 5] = np.nan
    z = query_z(scores, pool=50)
    for row, out in zip(scores, z):
        best = np.sort(row[np.isfinite(row)])[-50:]
        expected = (row - best.mean()) / best.std()
        np.testing.assert_allclose(out[np.isfinite(row)], expected[np.isfinite(row)])
    assert np.isnan(z[1, 5])
    np.testing.assert_allclose(fused_video_scores(Fusion(scale="query"), scores, scores, "shown"),
                               np.where(np.isnan(z), -np.inf, query_z(scores)))


def test_found_by_both_first_puts_a_moment_of_both_channels_above_a_stronger_single_one():
    shown = [(0.0, 4.0, 0.3), (10.0, 14.0, 0.9)]
    said = [(1.0, 4.5, 0.1, "hier")]
    # unit statistics, weight .5: the merged moment .5 * .3 + .5 * .1 = .2, the shown-only one .5 * .9 = .45
    plain = fuse_moments(shown, said, Fusion(said_weight=0.5))
    assert [(m.start, m.found_by, round(m.score, 6)) for m in plain] == [(10.0, "shown", 0.45), (0.0, "both", 0.2)]
    first = fuse_moments(shown, said, Fusion(said_weight=0.5, both_first=True))
    assert [(m.start, m.found_by, m.rank) for m in first] == [(0.0, "both", 1), (10.0, "shown", 2)]
    # one channel alone has nothing found by both to put first
    assert [m.start for m in fuse_moments(shown, said, Fusion(both_first=True), "shown")] == [10.0, 0.0]
    kept = Fusion(said_weight=0.3, rule="max", scale="query", both_first=True)
    assert Fusion.from_dict({**kept.to_dict(), "how": "val"}) == kept
    with pytest.raises(DataError, match="unknown fusion scale 'global'"):
        Fusion.from_dict({"scale": "global"})


def test_calibration_can_choose_per_query_standardisation():
    rng = np.random.default_rng(5)
    q = n = 80
    gold = rng.permutation(n)
    offset = rng.normal(0.0, 3.0, (q, 1))            # each query shifts and stretches the shown channel its own way
    spread = rng.uniform(0.2, 3.0, (q, 1))
    base = rng.normal(0.0, 1.0, (q, n))
    said = rng.normal(0.0, 1.0, (q, n))
    for i, g in enumerate(gold):
        (base if i % 2 else said)[i, g] += 4.0
    shown = offset + spread * base
    assert calibrate(shown, said, gold, scales=("val", "query")).scale == "query"
    assert calibrate(shown, said, gold).scale == "val"
