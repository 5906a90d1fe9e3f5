"""The runbook drills as Gherkin: shipped inside drdrill as ``drdrill.runbook`` (package data),
so that `drdrill init` can give any directory a copy and `drdrill run` finds them anywhere."""
