"""parallel-r1: a Ray-native pipeline that turns one tutoring model into a team of specialists.

The public API (`grade_turn`, `infer_profile`) is imported on first use, so that importing a subpackage
(`parallel_r1.data` in a Ray worker, say) does not import the graders and their clients."""

__version__ = "0.1.0"
__all__ = ["grade_turn", "infer_profile"]


def __getattr__(name: str):
    if name == "grade_turn":
        from parallel_r1.grade.rubric import grade_turn

        return grade_turn
    if name == "infer_profile":
        from parallel_r1.profiles import infer_profile

        return infer_profile
    raise AttributeError(f"module 'parallel_r1' has no attribute {name!r}")
