@fault
Feature: Faults of the object store during recovery
  The runbook's first common problem: the snapshot repository cannot be reached because MinIO
  is down, hung, or refuses the platform's credentials. The recovery must fail, and the
  diagnosis must say that MinIO is the cause and which check proved it.

  Background:
    Given the drill is expected to fail
    And the objectives are RTO 30s and RPO 24h
    And the platform holds 1 tenants with 1 indices of 50 documents each
    And the nightly backup has run
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed

  Scenario: MinIO is down when the metadata is restored
    When MinIO goes down
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    And data integrity is verified
    Then the recovery fails in phase "restore-metadata"
    And the diagnosis names "MinIO health"

  Scenario: MinIO hangs when the metadata is restored
    When MinIO hangs
    And the metadata database is restored from the newest dump in metadata/all
    Then the recovery fails in phase "restore-metadata"
    And the diagnosis names "MinIO"

  Scenario: MinIO rejects the credentials the restore uses
    When MinIO rejects the platform's credentials
    And the metadata database is restored from the newest dump in metadata/all
    Then the recovery fails in phase "restore-metadata"
    And the diagnosis names "credentials"
