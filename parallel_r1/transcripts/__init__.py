"""`parallel-r1 import TRANSCRIPTS`: real tutoring transcripts checked, profiled, appended to dialogues.parquet and
graded (the package is named after the `transcripts` config section: `import` is a Python keyword)."""
