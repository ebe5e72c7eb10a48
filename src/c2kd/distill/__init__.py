"""Frozen teachers for C2KD: loading, and their pooled scores cached once or computed live."""

from c2kd.distill.teachers import (
    CachedTeacherScores,
    GlobalCachedTeacherScores,
    LiveTeacherScores,
    TeacherConfig,
    TeacherScores,
    build_teacher_scores,
    load_teacher,
    load_teachers,
)

__all__ = ["CachedTeacherScores", "GlobalCachedTeacherScores", "LiveTeacherScores", "TeacherConfig",
           "TeacherScores", "build_teacher_scores", "load_teacher", "load_teachers"]
