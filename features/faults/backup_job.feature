@fault
Feature: Faults of the nightly backup job
  The backup itself fails or never ran: the drill must notice before anyone relies on it.

  Background:
    Given the drill is expected to fail
    And the objectives are RTO 30s and RPO 24h
    And the platform holds 1 tenants with 1 indices of 50 documents each

  Scenario: MinIO is down during the nightly backup
    Given MinIO goes down
    And the nightly backup has run
    Then the recovery fails in phase "backup"
    And the diagnosis names "MinIO"

  Scenario: PostgreSQL hangs during the nightly backup
    Given PostgreSQL hangs during the nightly backup
    And the nightly backup has run
    Then the recovery fails in phase "backup"
    And the diagnosis names "pg_isready"

  Scenario: A snapshot cannot complete because an index has no primary shard
    Given tenant "org1/ns1"'s snapshot cannot complete
    And the nightly backup has run
    Then the recovery fails in phase "backup"
    And the diagnosis names "unassigned"

  Scenario: The nightly backup never ran
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    Then the recovery fails in phase "restore-metadata"
    And the diagnosis names "no complete metadata dump"
