"""Structure distillation after MCKD against a plain loop implementation, and its defining properties."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from c2kd.losses import LossConfig, Relations, RetrievalObjective, StructureConfig, structure_distillation
from c2kd.losses.structure import relation_kl, relations


def reference_kl_rows(student: torch.Tensor, teacher: torch.Tensor, tau: float, skip_diagonal: bool) -> float:
    """Row-averaged KL(softmax(teacher / tau) || softmax(student / tau)), with loops; optionally without the
    diagonal entry of each row."""
    b = student.shape[0]
    total = 0.0
    for i in range(b):
        cols = [j for j in range(b) if not (skip_diagonal and j == i)]
        zp = sum(math.exp(teacher[i, j].item() / tau) for j in cols)
        zq = sum(math.exp(student[i, j].item() / tau) for j in cols)
        for j in cols:
            p = math.exp(teacher[i, j].item() / tau) / zp
            q = math.exp(student[i, j].item() / tau) / zq
            total += p * (math.log(p) - math.log(q))
    return total / b


def unit(*shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, dtype=torch.float64), dim=-1)


def reference_structure(s: Relations, t: Relations, c: StructureConfig) -> float:
    return (c.text_weight * reference_kl_rows(s.text, t.text, c.text_temperature, True)
            + c.video_weight * reference_kl_rows(s.video, t.video, c.video_temperature, True)
            + c.cross_weight * (reference_kl_rows(s.cross, t.cross, c.cross_temperature, False)
                                + reference_kl_rows(s.cross.T, t.cross.T, c.cross_temperature, False)))


@pytest.mark.parametrize("b", [2, 5, 12])
@pytest.mark.parametrize("taus", [(0.1, 0.1, 0.1), (0.05, 0.5, 1.0)])
@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0), (0.5, 0.0, 2.0)])
def test_structure_matches_reference(b, taus, weights):
    torch.manual_seed(b)
    config = StructureConfig(text_weight=weights[0], video_weight=weights[1], cross_weight=weights[2],
                             text_temperature=taus[0], video_temperature=taus[1], cross_temperature=taus[2])
    student, teacher = relations(unit(b, 8), unit(b, 8)), relations(unit(b, 6), unit(b, 6))
    got = structure_distillation(student, teacher, config).item()
    assert got == pytest.approx(reference_structure(student, teacher, config), rel=1e-6, abs=1e-9)


def test_columns_without_diagonal_match_transposed_rows():
    torch.manual_seed(0)
    s, t = unit(6, 4) @ unit(6, 4).T, unit(6, 4) @ unit(6, 4).T
    assert relation_kl(s, t, 0.2, dim=0, drop_diagonal=True).item() == pytest.approx(
        reference_kl_rows(s.T, t.T, 0.2, True), rel=1e-6)


def test_zero_when_the_student_equals_the_teacher_and_positive_otherwise():
    torch.manual_seed(1)
    text, video = unit(7, 8), unit(7, 8)
    same = relations(text, video)
    assert structure_distillation(same, relations(text.clone(), video.clone())).item() == pytest.approx(0, abs=1e-9)
    assert structure_distillation(relations(unit(7, 8), video), same).item() > 0.0
    # the same structure from other coordinates (a rotation of both spaces) is the same structure
    rotation, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    rotated = relations(text @ rotation, video @ rotation)
    assert structure_distillation(rotated, same).item() == pytest.approx(0, abs=1e-9)


def test_each_relation_is_used_only_with_its_weight():
    torch.manual_seed(2)
    teacher = relations(unit(5, 8), unit(5, 8))
    text_only = relations(unit(5, 8), unit(5, 8))
    student = Relations(text_only.text, teacher.video, teacher.cross)  # differs in the text relation only
    assert structure_distillation(student, teacher, StructureConfig(text_weight=0.0)).item() == pytest.approx(0)
    assert structure_distillation(student, teacher, StructureConfig(text_weight=1.0)).item() > 0


def test_gradients_reach_the_student_embeddings_not_the_teacher():
    torch.manual_seed(3)
    text = torch.randn(6, 8, requires_grad=True)
    video = torch.randn(6, 8, requires_grad=True)
    teacher_text = torch.randn(6, 8, requires_grad=True)
    student = relations(F.normalize(text, dim=-1), F.normalize(video, dim=-1))
    teacher = relations(F.normalize(teacher_text, dim=-1), F.normalize(torch.randn(6, 8), dim=-1))
    structure_distillation(student, teacher).backward()
    assert text.grad is not None and text.grad.abs().sum() > 0
    assert video.grad is not None and video.grad.abs().sum() > 0
    assert teacher_text.grad is None


def test_gradient_matches_finite_differences():
    torch.manual_seed(4)
    text = unit(4, 5).requires_grad_(True)
    video = unit(4, 5)
    teacher = relations(unit(4, 5), unit(4, 5))
    assert torch.autograd.gradcheck(lambda x: structure_distillation(relations(x, video), teacher), (text,))


def test_a_single_item_batch_has_no_structure_among_items():
    teacher, student = relations(unit(1, 4), unit(1, 4)), relations(unit(1, 4), unit(1, 4))
    assert relation_kl(student.text, teacher.text, 0.1, drop_diagonal=True).item() == 0.0


def test_objective_adds_structure_distillation_to_the_contrastive_loss():
    torch.manual_seed(5)
    b, langs = 6, ["en", "de"]
    text = {lang: unit(b, 8) for lang in langs}
    video = unit(b, 8)
    student = {lang: text[lang] @ video.T for lang in langs}
    teacher_text, teacher_video = unit(b, 8), unit(b, 8)
    teacher = dict.fromkeys(langs, teacher_text @ teacher_video.T)
    student_structure = {"video": video @ video.T, **{f"text/{lang}": text[lang] @ text[lang].T for lang in langs}}
    teacher_structure = {"video": teacher_video @ teacher_video.T,
                         **{f"text/{lang}": teacher_text @ teacher_text.T for lang in langs}}
    config = LossConfig(alpha=0.4, distillation="structure", structure=StructureConfig(video_weight=0.5))
    terms = RetrievalObjective(config)(student, teacher, student_structure, teacher_structure)
    nce = RetrievalObjective(LossConfig(alpha=1.0))(student)["loss"]
    kd = sum(structure_distillation(Relations(text[lang] @ text[lang].T, video @ video.T, student[lang]),
                                    Relations(teacher_text @ teacher_text.T, teacher_video @ teacher_video.T,
                                              teacher[lang]), config.structure) for lang in langs)
    assert terms["loss"].item() == pytest.approx(0.4 * nce.item() + 0.6 * float(kd), rel=1e-6)
    with pytest.raises(ValueError, match="structure"):
        RetrievalObjective(config)(student, teacher)
