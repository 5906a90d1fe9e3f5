"""The local target: real Elasticsearch, MinIO and PostgreSQL as processes on loopback
(:class:`~drdrill.targets.local.stack.LocalStack`), drilled by the stack-backed target
(:mod:`drdrill.targets.stack_target`). Independent of the other places under ``targets``."""
