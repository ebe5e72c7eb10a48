"""Frozen teachers for C2KD: loading, and their scores cached once or computed live."""

from c2kd.distill.teachers import CachedTeacherScores, LiveTeacherScores, TeacherScores, load_teacher, load_teachers

__all__ = ["CachedTeacherScores", "LiveTeacherScores", "TeacherScores", "load_teacher", "load_teachers"]
