"""`parallel-r1 discover`: Ray actors simulate teacher–student dialogues over scenario cards and student profiles,
with the procedural simulator or any OpenAI-compatible endpoint, and grade each one."""
