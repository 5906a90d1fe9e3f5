"""The containers target: the same services as containers on a Docker engine, with images built
here (stack, specs), and the faults only a Docker engine makes (target). Independent of the
other places under ``targets``."""
