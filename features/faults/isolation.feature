@fault
Feature: Tenant isolation in the backup store
  The runbook isolates backup paths by organisation and namespace. Each tenant's backup job
  holds credentials of its own; a policy written too wide lets one tenant read or overwrite
  another's backups, and the drill must say so.

  Background:
    Given the drill is expected to fail
    And the objectives are RTO 30s and RPO 24h
    And the platform holds 2 tenants with 1 indices of 50 documents each

  Scenario: One tenant's backup credentials also reach another tenant's path
    Given tenant "org1/ns1"'s backup credentials also reach tenant "org1/ns2"'s path
    And the nightly backup has run
    When each tenant's backup credentials are tried on every path
    Then the recovery fails in phase "verify-isolation"
    And the diagnosis names "reached it"
