"""parallel-r1: a Ray-native pipeline that turns one tutoring model into a team of specialists."""

from parallel_r1.grading.rubric import grade_turn
from parallel_r1.profiles import infer_profile

__version__ = "0.1.0"
__all__ = ["grade_turn", "infer_profile"]
