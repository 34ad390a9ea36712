"""Dependency management and supply-chain scanning, offline: lockfile inventory for every major
ecosystem, OSV vulnerability matching, licenses, CycloneDX SBOMs and committed-secret scanning.

Entry points live in :mod:`buildyard.deps.api`.
"""
