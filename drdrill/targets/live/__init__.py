"""The live target: an environment drdrill did not start (staging), restore-tested in place and
left as found (target); what it holds and what killed runs left (state); `drdrill target check`
(check). Independent of the other places under ``targets``."""
