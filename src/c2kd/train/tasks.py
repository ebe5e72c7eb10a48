"""The retrieval task: what one training step computes from a batch (student scores, teacher scores, loss)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from c2kd.data.dataset import Batch
from c2kd.distill.teachers import TeacherScores
from c2kd.losses.objective import RetrievalObjective
from c2kd.model import DualEncoder

#: gathers [B, D] embeddings from every process into [world * B, D] (identity in a single process)
Gather = Callable[[Tensor], Tensor]


class RetrievalTask:
    """``task(batch) -> named loss terms`` for zero-shot, translate-train and C2KD students and for teachers.

    All languages' captions of a batch go through the text tower in one forward pass ([B * L] texts).
    ``encoder`` (optional) runs both towers in one call, ``encoder(frames, mask, text_inputs) -> (video, text)``:
    pass the DistributedDataParallel wrapper of :class:`c2kd.train.distributed.StudentForward` there.
    ``gather`` concatenates the embeddings of every process (with gradients) so the scores cover the global batch.
    ``teacher_scores`` gives the teachers' pooled scores (:mod:`c2kd.distill.teachers`); the objective decides
    whether they are used. Scores and losses are computed in float32, also under autocast.
    """

    def __init__(self, model: DualEncoder, objective: RetrievalObjective, languages: Sequence[str],
                 teacher_scores: TeacherScores | None = None, max_tokens: int = 35,
                 gather: Gather | None = None, encoder: nn.Module | None = None):
        if objective.uses_teachers and teacher_scores is None:
            raise ValueError("the objective distills (alpha < 1) but no teacher scores were given")
        self.model = model
        self.objective = objective
        self.languages = list(languages)
        self.teacher_scores = teacher_scores
        self.max_tokens = max_tokens
        self.gather = gather or (lambda x: x)
        self.encoder = encoder

    def student_embeddings(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Shape: -> texts [G, L, D], videos [G, D] float32, unit rows (G = B without a distributed gather)."""
        texts = [t for lang in self.languages for t in batch.texts[lang]]
        inputs = self.model.text.prepare(texts, self.max_tokens)
        device = batch.frames.device
        inputs = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
        if self.encoder is not None:
            video, text = self.encoder(batch.frames, batch.mask, inputs)  # [B, D], [L * B, D]
        else:
            video, text = self.model.encode_video(batch.frames, batch.mask), self.model.encode_text(inputs)
        per_item = text.view(len(self.languages), len(batch), -1).transpose(0, 1)  # [B, L, D]
        video = self.gather(video.float())  # [G, D]
        per_item = self.gather(per_item.float().contiguous())  # [G, L, D]: one collective for all languages
        return per_item, video

    def student_scores(self, batch: Batch) -> dict[str, Tensor]:
        """Shape: -> language -> [B, B] float32 (or [world*B, world*B] with a distributed gather)."""
        return self._scores(*self.student_embeddings(batch), batch.frames.device)

    def _scores(self, per_item: Tensor, video: Tensor, device: torch.device) -> dict[str, Tensor]:
        with torch.autocast(device.type, enabled=False):
            return {lang: per_item[:, i] @ video.T for i, lang in enumerate(self.languages)}

    def _structure(self, per_item: Tensor, video: Tensor, device: torch.device) -> dict[str, Tensor]:
        """Shape: -> ``video`` [G, G] (videos x videos), ``text/<lang>`` [G, G] (captions x captions)"""
        with torch.autocast(device.type, enabled=False):
            out = {"video": video @ video.T}
            out.update({f"text/{lang}": per_item[:, i] @ per_item[:, i].T for i, lang in enumerate(self.languages)})
            return out

    def __call__(self, batch: Batch) -> dict[str, Tensor]:
        per_item, video = self.student_embeddings(batch)
        device = batch.frames.device
        student = self._scores(per_item, video, device)
        teacher = student_structure = teacher_structure = None
        if self.objective.uses_teachers:
            assert self.teacher_scores is not None
            with torch.no_grad():
                teacher = self.teacher_scores(batch, self.languages)  # language -> [B, B], pooled
                if self.objective.config.uses_structure:
                    teacher_structure = self.teacher_scores.structure(batch, self.languages)
            if self.objective.config.uses_structure:
                student_structure = self._structure(per_item, video, device)
        return self.objective(student, teacher, student_structure, teacher_structure)
