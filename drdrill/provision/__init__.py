"""Provisioning: fetch, build and install the local target's services once per machine.

Everything lands under the cache directory (see :mod:`drdrill.settings`), never in the repo.
"""
