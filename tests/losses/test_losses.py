"""Losses against plain loop implementations, and their defining properties."""

import math

import pytest
import torch

from c2kd.losses import LossConfig, RetrievalObjective, c2kd_loss, nce_loss, smooth_l1_distillation
from c2kd.similarity import pool_teacher_scores


def reference_nce(scores: torch.Tensor, tau: float, symmetric: bool) -> float:
    b = scores.shape[0]
    total = 0.0
    for i in range(b):
        row = [math.exp(scores[i, j].item() / tau) for j in range(b)]
        total += -math.log(row[i] / sum(row))
    loss = total / b
    if symmetric:
        loss += reference_nce(scores.T.contiguous(), tau, symmetric=False)
    return loss


def reference_soft_ce(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> float:
    """Cross entropy H(P', Q) over rows, minus the teacher entropy H(P'): the KL divergence, row-averaged."""
    b = student.shape[0]
    total = 0.0
    for i in range(b):
        zp = sum(math.exp(teacher[i, k].item() / tau) for k in range(b))
        zq = sum(math.exp(student[i, k].item() / tau) for k in range(b))
        for j in range(b):
            p = math.exp(teacher[i, j].item() / tau) / zp
            q = math.exp(student[i, j].item() / tau) / zq
            total += -p * math.log(q) + p * math.log(p)
    return total / b


@pytest.mark.parametrize("b", [2, 5, 16])
@pytest.mark.parametrize("tau", [0.05, 0.1, 1.0])
@pytest.mark.parametrize("symmetric", [True, False])
def test_nce_matches_reference(b, tau, symmetric):
    torch.manual_seed(b)
    scores = torch.nn.functional.normalize(torch.randn(b, 8), dim=1) @ torch.nn.functional.normalize(
        torch.randn(b, 8), dim=1).T
    assert nce_loss(scores, tau, symmetric).item() == pytest.approx(reference_nce(scores.double(), tau, symmetric),
                                                                    rel=1e-4)


@pytest.mark.parametrize("b", [3, 8])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_c2kd_matches_reference_rows_and_columns(b, tau):
    torch.manual_seed(b)
    s, t = torch.rand(b, b) * 2 - 1, torch.rand(b, b) * 2 - 1
    expected = reference_soft_ce(s.double(), t.double(), tau) + reference_soft_ce(s.T.double(), t.T.double(), tau)
    assert c2kd_loss(s, t, tau).item() == pytest.approx(expected, rel=1e-4)
    assert c2kd_loss(s, t, tau, symmetric=False).item() == pytest.approx(
        reference_soft_ce(s.double(), t.double(), tau), rel=1e-4)


def test_c2kd_is_zero_and_minimal_when_student_equals_teacher():
    torch.manual_seed(0)
    t = torch.rand(6, 6)
    assert c2kd_loss(t.clone(), t).item() == pytest.approx(0.0, abs=1e-6)
    for _ in range(5):
        assert c2kd_loss(t + 0.1 * torch.randn(6, 6), t).item() > 0


def test_c2kd_gradient_equals_cross_entropy_gradient():
    """KL and the paper's cross entropy differ by the teacher entropy, so their gradients coincide."""
    torch.manual_seed(1)
    t = torch.rand(5, 5)
    s1 = torch.rand(5, 5, requires_grad=True)
    s2 = s1.detach().clone().requires_grad_(True)
    c2kd_loss(s1, t, 0.1, symmetric=False).backward()
    p = torch.softmax(t / 0.1, dim=1)
    ce = -(p * torch.log_softmax(s2 / 0.1, dim=1)).sum(dim=1).mean()
    ce.backward()
    assert torch.allclose(s1.grad, s2.grad, atol=1e-5)


def test_teacher_gets_no_gradient():
    t = torch.rand(4, 4, requires_grad=True)
    s = torch.rand(4, 4, requires_grad=True)
    c2kd_loss(s, t).backward()
    assert t.grad is None and s.grad is not None


@pytest.mark.parametrize("softmax", [False, True])
def test_smooth_l1_matches_manual(softmax):
    torch.manual_seed(2)
    s, t = torch.rand(4, 4), torch.rand(4, 4)

    def sl1(a, b):
        d = (a - b).abs()
        return torch.where(d < 1, 0.5 * d**2, d - 0.5).mean()

    if softmax:
        expected = sl1(torch.softmax(s / 0.1, 1), torch.softmax(t / 0.1, 1)) + sl1(
            torch.softmax(s / 0.1, 0), torch.softmax(t / 0.1, 0))
    else:
        expected = sl1(s, t)
    assert smooth_l1_distillation(s, t, softmax=softmax).item() == pytest.approx(expected.item(), rel=1e-5)


def test_poolers_compute_what_they_are_named():
    torch.manual_seed(3)
    scores = torch.randn(3, 4, 4)
    for i in range(4):
        for j in range(4):
            column = [scores[m, i, j].item() for m in range(3)]
            assert pool_teacher_scores(scores, "min")[i, j].item() == pytest.approx(min(column))
            assert pool_teacher_scores(scores, "max")[i, j].item() == pytest.approx(max(column))
            assert pool_teacher_scores(scores, "mean")[i, j].item() == pytest.approx(sum(column) / 3, abs=1e-6)
    with pytest.raises(ValueError, match="unknown pooler 'median'; choose one of min, max, mean, zmean"):
        pool_teacher_scores(scores, "median")


def test_zmean_weighs_teachers_by_their_standardised_scores_not_their_spread():
    # hand-computed: teacher 2 is teacher 1 shrunk to a tenth and shifted; standardised they are the same matrix
    first = torch.tensor([[[0.9, 0.1], [0.3, 0.5]]])
    pair = torch.cat([first, 0.1 * first + 0.8])
    z = (first[0] - 0.45) / first[0].std(unbiased=False)  # mean 0.45, population std 0.2958...
    spread, location = (1 + 0.1) / 2 * first[0].std(unbiased=False), (0.45 + 0.845) / 2
    torch.testing.assert_close(pool_teacher_scores(pair, "zmean"), z * spread + location)
    # teachers with the same location and spread: the plain mean
    torch.manual_seed(0)
    a = torch.randn(4, 4)
    b = torch.randn(4, 4)
    b = (b - b.mean()) / b.std(unbiased=False) * a.std(unbiased=False) + a.mean()
    torch.testing.assert_close(pool_teacher_scores(torch.stack([a, b]), "zmean"), (a + b) / 2)
    # rescaling one teacher changes only the result's location and spread: its standardised shape is kept
    rescaled = pool_teacher_scores(torch.stack([a, 3.0 * b - 1.0]), "zmean")
    pooled = pool_teacher_scores(torch.stack([a, b]), "zmean")

    def standard(x):
        return (x - x.mean()) / x.std()

    torch.testing.assert_close(standard(rescaled), standard(pooled))
    # a plain mean lets the wide teacher decide: the ranking of a row follows it alone
    wide, narrow = torch.tensor([[1.0, 0.0, 0.5]]), torch.tensor([[0.0, 0.10, 0.06]])
    assert pool_teacher_scores(torch.stack([wide, narrow]), "mean").argmax().item() == 0
    assert pool_teacher_scores(torch.stack([wide, narrow]), "zmean").argmax().item() == 2


def test_objective_combines_languages_with_alpha():
    torch.manual_seed(4)
    student = {"en": torch.rand(4, 4), "de": torch.rand(4, 4)}
    teacher = {"en": torch.rand(4, 4), "de": torch.rand(4, 4)}
    terms = RetrievalObjective(LossConfig(alpha=0.3))(student, teacher)
    nce = sum(nce_loss(s, 0.05) for s in student.values())
    kd = sum(c2kd_loss(student[k], teacher[k], 0.1) for k in student)
    assert terms["loss"].item() == pytest.approx((0.3 * nce + 0.7 * kd).item(), rel=1e-5)
    assert set(terms) >= {"nce/en", "nce/de", "distill/en", "distill/de", "nce", "distill", "loss"}
    with pytest.raises(ValueError, match=r"alpha=0\.5 < 1 needs teacher scores"):
        RetrievalObjective(LossConfig(alpha=0.5))(student, None)
    assert RetrievalObjective(LossConfig(alpha=1.0))(student)["loss"].item() == pytest.approx(nce.item(), rel=1e-6)


@pytest.mark.parametrize("weight", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_english_nce_weight_scales_only_the_english_contrastive_term(weight, alpha):
    """Reference: the published runs' objective, alpha * (w * NCE_en + sum of the other NCE) + (1 - alpha) * KD."""
    torch.manual_seed(5)
    student = {"en": torch.rand(5, 5), "de": torch.rand(5, 5), "cs": torch.rand(5, 5)}
    teacher = {lang: torch.rand(5, 5) for lang in student}
    config = LossConfig(alpha=alpha, english_nce_weight=weight)
    terms = RetrievalObjective(config)(student, teacher if alpha < 1 else None)
    nce = sum((weight if lang == "en" else 1.0) * reference_nce(s, 0.05, True) for lang, s in student.items())
    kd = 0.0
    if alpha < 1:
        kd = sum(reference_soft_ce(student[k], teacher[k], 0.1) + reference_soft_ce(student[k].T, teacher[k].T, 0.1)
                 for k in student)
    assert terms["loss"].item() == pytest.approx(alpha * nce + (1 - alpha) * kd, rel=1e-5)
    assert terms["nce/en"].item() == pytest.approx(reference_nce(student["en"], 0.05, True), rel=1e-5)  # unweighted
