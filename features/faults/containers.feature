@fault @containers
Feature: Faults only containers can make
  The object store's network cut or resetting connections, Elasticsearch killed by the kernel
  for memory, and a data disk that is really full (not watermarks). Each is done for real on
  the containers target (`drdrill run features/faults/containers.feature --target containers`)
  and healed after the scenario; other targets leave this feature out.

  Background:
    Given the drill is expected to fail
    And the objectives are RTO 30s and RPO 24h
    And the platform holds 1 tenants with 1 indices of 50 documents each

  Scenario: The object store is cut off from the network during the nightly backup
    Given the object store will be cut off from the network during the nightly backup
    And the nightly backup has run
    Then the recovery fails in phase "backup"
    And the diagnosis names "MinIO"

  Scenario: The object store is cut off from the network during the restore
    Given the nightly backup has run
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And the object store will be cut off from the network during the snapshot restore
    And every tenant's snapshot is restored from MinIO
    Then the recovery fails in phase "restore-snapshots"
    And the diagnosis names "MinIO"

  Scenario: The object store resets every connection
    Given the nightly backup has run
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the object store resets every connection
    And the metadata database is restored from the newest dump in metadata/all
    Then the recovery fails in phase "restore-metadata"
    And the diagnosis names "MinIO"

  Scenario: Elasticsearch is OOM-killed as the restore begins
    Given the nightly backup has run
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And Elasticsearch will be OOM-killed as the snapshot restore begins
    And every tenant's snapshot is restored from MinIO
    Then the recovery fails in phase "restore-snapshots"
    And the diagnosis names "OOM killer"

  Scenario: The data disk of Elasticsearch is really full
    Given the nightly backup has run
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And the data disk of Elasticsearch is really full
    And every tenant's snapshot is restored from MinIO
    Then the recovery fails in phase "restore-snapshots"
    And the diagnosis names "disk"
