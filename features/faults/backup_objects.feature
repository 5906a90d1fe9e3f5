@fault
Feature: Damaged, missing or mismatched backups
  A backup that looks present but cannot be trusted: tampered, truncated, deleted, encrypted
  differently than the restore expects, or belonging to someone else. Nothing may be restored
  from it, and the report must say what is wrong with it.

  Background:
    Given the drill is expected to fail
    And the objectives are RTO 30s and RPO 24h
    And the platform holds 2 tenants with 1 indices of 50 documents each
    And the nightly backup has run
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed

  Scenario: The newest metadata dump was altered after the backup
    When the newest metadata dump is corrupted
    And the metadata database is restored from the newest dump in metadata/all
    Then the recovery fails in phase "restore-metadata"
    And the diagnosis names "does not match its checksum record"

  Scenario: The newest metadata dump is truncated and has no checksum record
    When the newest metadata dump is truncated
    And the metadata database is restored from the newest dump in metadata/all
    Then the recovery fails in phase "restore-metadata"
    And the diagnosis names "dump"

  Scenario: The newest metadata dump was deleted
    When the newest metadata dump is deleted
    And the metadata database is restored from the newest dump in metadata/all
    Then the recovery fails in phase "restore-metadata"
    And the diagnosis names "no complete metadata dump"

  Scenario: The checksum record was altered
    When the checksum record of the newest metadata dump is altered
    And the metadata database is restored from the newest dump in metadata/all
    Then the recovery fails in phase "restore-metadata"
    And the diagnosis names "checksum record"

  Scenario: The restore is given the wrong decryption password
    When the restore is given the wrong password
    And the metadata database is restored from the newest dump in metadata/all
    Then the recovery fails in phase "restore-metadata"
    And the diagnosis names "cannot be decrypted"

  Scenario: The restore assumes OpenSSL 1.0's md5 key derivation
    When the restore assumes the legacy md5 key derivation
    And the metadata database is restored from the newest dump in metadata/all
    Then the recovery fails in phase "restore-metadata"
    And the diagnosis names "cannot be decrypted"

  Scenario: A tenant's snapshot repository was deleted
    When tenant "org1/ns1"'s repository is deleted
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    Then the recovery fails in phase "restore-snapshots"
    And the diagnosis names "no complete snapshot"

  Scenario: A tenant's repository holds another tenant's snapshots
    When the repository of tenant "org1/ns1" is swapped for that of tenant "org1/ns2"
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    Then the recovery fails in phase "restore-snapshots"
    And the diagnosis names "another tenant"

  Scenario: A data blob of a snapshot rotted in the object store
    When tenant "org1/ns1"'s snapshot has a corrupted data blob
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    Then the recovery fails in phase "restore-snapshots"
    And the diagnosis names "CorruptIndexException"

  Scenario: A repository's index.latest points at a generation that does not exist
    When tenant "org1/ns1"'s repository's index.latest is corrupted
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    Then the recovery fails in phase "restore-snapshots"
    And the diagnosis names "index-999"

  Scenario: No backup within the RPO window
    Given the objectives are RTO 30s and RPO 1s
    When the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    And data integrity is verified
    Then the recovery fails in phase "backup-exposure"
    And the diagnosis names "RPO window"
