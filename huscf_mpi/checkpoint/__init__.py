"""Checkpoints: a snapshot of what training changes (:mod:`.state`) and its files on disk (:mod:`.files`)."""
