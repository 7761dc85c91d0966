"""parallel-r1: a Ray-native pipeline that turns one tutoring model into a team of specialists."""

__version__ = "0.1.0"
